//! Known vectors and round trips.
//!
//! Vectors: node-pdu `tests/parsing.test.ts` (MIT), smspdudecoder
//! `tests/test_codecs.py` (MIT), and the "hellohello" example of the
//! 23.038 packing description as reproduced in most PDU references.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn deliver(hex: &str) -> Deliver {
    decode_deliver(&from_hex(hex).unwrap()).unwrap()
}

/// 2018-11-07 20:21:22 local.
const NOV_7_2018_202122: i64 = 1_541_622_082;

#[test]
fn gsm7_packing_vectors() {
    let cases = [
        ("hello", "E8329BFD06"),
        ("12345678", "31D98C56B3DD70"),
        ("[10€]", "1B5E0CB6296F7C"),
        ("hellohello", "E8329BFD4697D9EC37"),
    ];
    for (text, hex) in cases {
        let septets = gsm7::encode(text).unwrap();
        assert_eq!(to_hex(&gsm7::pack(&septets, 0)), hex, "{text}");
        let unpacked = gsm7::unpack(&from_hex(hex).unwrap(), septets.len(), 0).unwrap();
        assert_eq!(gsm7::decode(&unpacked), text);
    }
}

#[test]
fn gsm7_long_text_vector() {
    let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, \
                sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.";
    let hex = "CCB7BCDC06A5E1F37A1B447EB3DF72D03C4D0785DB653A0B347EBBE7E531BD4CAFCB4161\
               721A9E9E8FD3EE33A8CC4ED359A079990C22BF41E5747DDE7E9341F4721BFE9683D2EE71\
               9A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C36777181466A7E3F5B00B";
    assert_eq!(to_hex(&gsm7::pack(&gsm7::encode(text).unwrap(), 0)), hex);
}

#[test]
fn swedish_letters_are_in_the_gsm_alphabet() {
    let septets = gsm7::encode("Larm: Källare, Ö-dörr, Åsa").unwrap();
    assert_eq!(gsm7::decode(&septets), "Larm: Källare, Ö-dörr, Åsa");
    assert!(gsm7::encode("smile 😀").is_none());
    assert!(matches!(split("åäö ÅÄÖ")[0], Body::Gsm7(_)));
}

#[test]
fn plain_deliver() {
    let d =
        deliver("07919730071111F1000B919746121611F10000811170021222230DC8329BFD6681EE6F399B1C02");
    assert_eq!(d.smsc, Some(Address::International("79037011111".into())));
    assert_eq!(d.sender, Address::International("79642161111".into()));
    assert_eq!(d.sender.to_string(), "+79642161111");
    assert_eq!(d.body.text(), "Hello, world!");
    assert_eq!(d.timestamp.zone_quarters, 32);
    assert_eq!(d.timestamp.unix, NOV_7_2018_202122 - 8 * 3600);
    assert_eq!(d.concat, None);
}

#[test]
fn negative_time_zone() {
    let d =
        deliver("07919730071111F1000B919746121611F100008111700212222B0DC8329BFD6681EE6F399B1C02");
    assert_eq!(d.timestamp.zone_quarters, -32);
    assert_eq!(d.timestamp.unix, NOV_7_2018_202122 + 8 * 3600);
}

#[test]
fn alphanumeric_sender() {
    let d = deliver(
        "07911326060032F0000DD0D432DBFC96D30100001121313121114012D7327BFC6E9741F437885A669BDF723A",
    );
    assert_eq!(d.sender, Address::Alphanumeric("Telfort".into()));
    assert_eq!(d.smsc.unwrap().to_string(), "+31626000230");
    assert_eq!(d.body.text(), "Welcome to Telfort");
    // 2011-12-13 13:12:11 +01:00
    assert_eq!(d.timestamp.unix, 1_323_781_931 - 3600);
}

#[test]
fn extension_table_characters() {
    let d = deliver("07919730071111F1000B919746121611F10000811170021222230A1B5E583C2697CD1B1F");
    assert_eq!(d.body.text(), "[abcdef]");
    let d = deliver("07919730071111F1000B919746121611F1000081117002122223081B14BD3CA76F52");
    assert_eq!(d.body.text(), "{test}");
    let septets = gsm7::encode("€ [ ] { } \\ ^ ~ |").unwrap();
    assert_eq!(gsm7::decode(&septets), "€ [ ] { } \\ ^ ~ |");
}

#[test]
fn ucs2_deliver() {
    let d = deliver(
        "07919730071111F1000B919746121611F100088111800212222318041F04400438043204350442002C0020043C043804400021",
    );
    assert_eq!(d.body.text(), "Привет, мир!");
}

#[test]
fn flash_message_class_zero() {
    let d = deliver(
        "07919730071111F1000B919746121611F10010811170021222231054747A0E4ACF416190991D9EA343",
    );
    assert_eq!(d.dcs, 0x10);
    assert_eq!(d.body.text(), "This is a flash!");
}

#[test]
fn concatenated_8_bit_reference() {
    let one =
        deliver("07919730071111F1400B919746121611F10000100161916223230D0500032E020190E175DD1D06");
    let two =
        deliver("07919730071111F1400B919746121611F10000100161916233230E0500032E020240ED303D4C0F03");
    assert_eq!(
        one.concat,
        Some(Concat {
            reference: 0x2e,
            total: 2,
            seq: 1
        })
    );
    assert_eq!(one.body.text(), "Hakuna");
    assert_eq!(two.body.text(), " matata");
    let mut r = Reassembler::new(Duration::from_secs(60));
    let now = Instant::now();
    // Out of order.
    assert_eq!(r.push(two, now), None);
    let sms = r.push(one, now).unwrap();
    assert_eq!(sms.text, "Hakuna matata");
    assert!(!sms.incomplete);
}

#[test]
fn concatenated_16_bit_reference_three_parts() {
    let parts = [
        "07919730071111F1400B919746121611F10000811170021222230E060804123403015774987E9A03",
        "07919730071111F1400B919746121611F10000811170021232230C06080412340302A03A9C05",
        "07919730071111F1400B919746121611F10000811170021242230D06080412340303A076D8FD03",
    ];
    let mut r = Reassembler::new(Duration::from_secs(60));
    let now = Instant::now();
    let mut done = None;
    for hex in parts {
        let part = deliver(hex);
        assert_eq!(part.concat.unwrap().reference, 0x1234);
        done = r.push(part, now);
    }
    assert_eq!(done.unwrap().text, "What's up, man?");
}

#[test]
fn parts_with_the_same_reference_from_other_messages_do_not_mix() {
    // 0x1234 and 0x1235 share their second part's text but are different messages.
    let mut r = Reassembler::new(Duration::from_secs(60));
    let now = Instant::now();
    let a1 =
        deliver("07919730071111F1400B919746121611F10000811170021222230E06080412340201C8329BFD6601");
    let b1 = deliver("07919730071111F1400B919746121611F10000811170021222230B06080412350201C8340B");
    let b2 = deliver(
        "07919730071111F1400B919746121611F10000811170021232230F06080412350202A0FB5BCE268700",
    );
    assert_eq!(r.push(a1, now), None);
    assert_eq!(r.push(b1, now), None);
    assert_eq!(r.push(b2, now).unwrap().text, "Hi, world!");
}

#[test]
fn a_missing_part_times_out_with_a_gap() {
    let mut r = Reassembler::new(Duration::from_secs(30));
    let t0 = Instant::now();
    let to = Address::International("46701234567".into());
    let long = "x".repeat(400);
    let pdus = encode_deliver(
        &to,
        &to,
        &long,
        Timestamp {
            unix: 0,
            zone_quarters: 4,
        },
        7,
    );
    assert_eq!(pdus.len(), 3);
    assert_eq!(r.push(decode_deliver(&pdus[0]).unwrap(), t0), None);
    assert_eq!(r.push(decode_deliver(&pdus[2]).unwrap(), t0), None);
    assert!(r.expire(t0 + Duration::from_secs(29)).is_empty());
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(30)));
    let late = r.expire(t0 + Duration::from_secs(30));
    assert_eq!(late.len(), 1);
    assert!(late[0].incomplete);
    assert_eq!(
        late[0].text,
        format!("{}[…]{}", "x".repeat(153), "x".repeat(94))
    );
}

#[test]
fn submit_vector() {
    // +46708251358, "hellohello", validity 4 days.
    let to = Address::parse("+46708251358").unwrap();
    let encoded = encode_submit(&to, "hellohello", 0);
    assert_eq!(encoded.len(), 1);
    assert_eq!(
        to_hex(&encoded[0].pdu),
        "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
    );
    assert_eq!(encoded[0].tpdu_len, 23);
    let back = decode_submit(&encoded[0].pdu).unwrap();
    assert_eq!(back.recipient, to);
    assert_eq!(back.body.text(), "hellohello");
}

#[test]
fn submit_vectors_from_node_pdu() {
    let s = decode_submit(
        &from_hex("001100039199F90000FF1A4937BD2C7787E9E9B73BCC06C1D16F7719E4AEB7C56539").unwrap(),
    )
    .unwrap();
    assert_eq!(s.recipient.to_string(), "+999");
    assert_eq!(s.body.text(), "International phone number");
    let s = decode_submit(&from_hex("000100038199F9000005C8329BFD06").unwrap()).unwrap();
    assert_eq!(s.recipient.to_string(), "999");
    assert_eq!(s.body.text(), "Hello");
}

#[test]
fn addresses() {
    assert_eq!(
        Address::parse("+46 70-123 45 67"),
        Some(Address::International("46701234567".into()))
    );
    assert_eq!(
        Address::parse("0701234567").unwrap().to_string(),
        "0701234567"
    );
    assert_eq!(Address::parse("+"), None);
    assert_eq!(Address::parse("call me"), None);
    let name = Address::Alphanumeric("Larm AB".into());
    let pdus = encode_deliver(
        &Address::International("4670000".into()),
        &name,
        "hej",
        Timestamp {
            unix: 1_700_000_000,
            zone_quarters: -14,
        },
        0,
    );
    let d = decode_deliver(&pdus[0]).unwrap();
    assert_eq!(d.sender, name);
    assert_eq!(
        d.timestamp,
        Timestamp {
            unix: 1_700_000_000,
            zone_quarters: -14
        }
    );
}

#[test]
fn swedish_ucs2_and_emoji_split_on_character_boundaries() {
    let text = "Larm 😀 ".repeat(30);
    let bodies = split(&text);
    assert!(bodies.len() > 1);
    for body in &bodies {
        let Body::Ucs2(units) = body else {
            panic!("UCS2 expected")
        };
        assert!(units.len() <= UCS2_PART);
        assert!(
            String::from_utf16(units).is_ok(),
            "no surrogate pair is split"
        );
    }
    let to = Address::parse("+46701234567").unwrap();
    let mut r = Reassembler::new(Duration::from_secs(60));
    let now = Instant::now();
    let mut whole = None;
    for encoded in encode_submit(&to, &text, 9) {
        let s = decode_submit(&encoded.pdu).unwrap();
        assert_eq!(s.dcs, 0x08);
        let as_deliver = Deliver {
            smsc: None,
            sender: to.clone(),
            timestamp: Timestamp {
                unix: 0,
                zone_quarters: 0,
            },
            dcs: s.dcs,
            concat: s.concat,
            body: s.body,
        };
        whole = r.push(as_deliver, now);
    }
    assert_eq!(whole.unwrap().text, text);
}

#[test]
fn escapes_are_not_split_across_parts() {
    let text = format!("{}€€€€€", "a".repeat(152));
    let bodies = split(&text);
    let Body::Gsm7(first) = &bodies[0] else {
        panic!()
    };
    assert_eq!(
        first.len(),
        152,
        "the euro's escape pair moved to the next part"
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for hex in [
        "",
        "00",
        "0791",
        "07919730071111F1000B91",
        "07919730071111F1FF",
        "0011000B916407281553F80000AA0A",
    ] {
        let bytes = from_hex(hex).unwrap();
        assert!(decode_deliver(&bytes).is_err(), "{hex}");
        assert!(decode_submit(&bytes).is_err(), "{hex}");
    }
    assert_eq!(from_hex("0G"), Err(PduError::Hex));
    assert_eq!(from_hex("123"), Err(PduError::Hex));
}

proptest! {
    /// Any text survives encode → split → reassemble → decode.
    #[test]
    fn any_text_round_trips(text in "\\PC{0,600}", reference: u8, order_seed: u64) {
        let from = Address::International("46701234567".into());
        let ts = Timestamp { unix: 1_700_000_000, zone_quarters: 4 };
        let mut pdus = encode_deliver(&from, &from, &text, ts, reference);
        // Parts may arrive in any order.
        let n = pdus.len();
        if n > 1 {
            pdus.rotate_left((order_seed % n as u64) as usize);
        }
        let mut r = Reassembler::new(Duration::from_secs(60));
        let now = Instant::now();
        let mut whole = None;
        for pdu in pdus {
            let part = decode_deliver(&pdu).unwrap();
            prop_assert_eq!(&part.sender, &from);
            whole = r.push(part, now).or(whole);
        }
        let sms = whole.unwrap();
        prop_assert_eq!(sms.text, text);
        prop_assert_eq!(sms.timestamp, ts);
    }

    /// GSM-alphabet text (with extension characters) stays 7-bit.
    #[test]
    fn gsm_text_stays_seven_bit(text in "[a-zA-Z0-9 åäöÅÄÖ@£$€\\[\\]{}|~^\\\\]{0,400}") {
        for body in split(&text) {
            prop_assert!(matches!(body, Body::Gsm7(_)));
        }
        let to = Address::parse("+4670").unwrap();
        let mut joined = String::new();
        for e in encode_submit(&to, &text, 1) {
            prop_assert_eq!(e.pdu.len(), e.tpdu_len + 1);
            joined.push_str(&decode_submit(&e.pdu).unwrap().body.text());
        }
        prop_assert_eq!(joined, text);
    }

    /// Decoding never panics.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_deliver(&bytes);
        let _ = decode_submit(&bytes);
    }
}
