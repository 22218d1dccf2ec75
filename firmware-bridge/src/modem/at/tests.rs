//! The engine against a scripted peer on a duplex pipe.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::*;

const T: Duration = Duration::from_secs(5);

/// The modem's side: reads one command (up to `\r`), returns it.
async fn read_command(peer: &mut BufReader<DuplexStream>) -> String {
    let mut buf = Vec::new();
    peer.read_until(b'\r', &mut buf).await.unwrap();
    String::from_utf8(buf).unwrap().trim().to_string()
}

fn setup() -> (
    AtClient,
    mpsc::UnboundedReceiver<Urc>,
    BufReader<DuplexStream>,
) {
    let (ours, theirs) = tokio::io::duplex(4096);
    let (client, urcs) = spawn(ours);
    (client, urcs, BufReader::new(theirs))
}

#[tokio::test]
async fn response_with_echo_and_a_urc_in_the_middle() {
    let (client, mut urcs, mut peer) = setup();
    let ask = tokio::spawn(async move { client.command("AT+CSQ", T).await });
    assert_eq!(read_command(&mut peer).await, "AT+CSQ");
    peer.get_mut()
        .write_all(b"AT+CSQ\r\r\n+CMTI: \"SM\",4\r\n+CSQ: 21,99\r\nRING\r\n\r\nOK\r\n")
        .await
        .unwrap();
    assert_eq!(ask.await.unwrap(), Ok(vec!["+CSQ: 21,99".to_string()]));
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 4
        })
    );
    assert_eq!(urcs.recv().await, Some(Urc::Ring));
}

#[tokio::test]
async fn errors_are_typed() {
    let (client, _urcs, mut peer) = setup();
    for (reply, expected) in [
        ("ERROR", AtError::Error("AT+CPIN?".into())),
        (
            "+CME ERROR: SIM not inserted",
            AtError::Cme("AT+CPIN?".into(), "SIM not inserted".into()),
        ),
        (
            "+CMS ERROR: 322",
            AtError::Cms("AT+CPIN?".into(), "322".into()),
        ),
    ] {
        let c = client.clone();
        let ask = tokio::spawn(async move { c.command("AT+CPIN?", T).await });
        read_command(&mut peer).await;
        peer.get_mut()
            .write_all(format!("\r\n{reply}\r\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(ask.await.unwrap(), Err(expected));
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_modem_times_out_and_the_next_command_still_works() {
    let (client, _urcs, mut peer) = setup();
    let c = client.clone();
    let ask = tokio::spawn(async move { c.command("AT", Duration::from_secs(2)).await });
    read_command(&mut peer).await;
    assert_eq!(ask.await.unwrap(), Err(AtError::Timeout("AT".into())));
    let ask = tokio::spawn(async move { client.command("ATI", T).await });
    assert_eq!(read_command(&mut peer).await, "ATI");
    peer.get_mut()
        .write_all(b"\r\nQuectel\r\nOK\r\n")
        .await
        .unwrap();
    assert_eq!(ask.await.unwrap(), Ok(vec!["Quectel".to_string()]));
}

#[tokio::test]
async fn cmgs_waits_for_the_prompt_then_sends_the_pdu() {
    let (client, _urcs, mut peer) = setup();
    let ask = tokio::spawn(async move {
        client
            .command_with_payload(
                "AT+CMGS=23",
                "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
                T,
            )
            .await
    });
    assert_eq!(read_command(&mut peer).await, "AT+CMGS=23");
    peer.get_mut().write_all(b"\r\n> ").await.unwrap();
    let mut pdu = Vec::new();
    peer.read_until(0x1a, &mut pdu).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pdu),
        "0011000B916407281553F80000AA0AE8329BFD4697D9EC37\u{1a}"
    );
    peer.get_mut()
        .write_all(b"\r\n+CMGS: 17\r\n\r\nOK\r\n")
        .await
        .unwrap();
    assert_eq!(ask.await.unwrap(), Ok(vec!["+CMGS: 17".to_string()]));
}

#[tokio::test]
async fn a_prompt_without_its_space() {
    let (client, _urcs, mut peer) = setup();
    let ask = tokio::spawn(async move { client.command_with_payload("AT+CMGS=5", "AB", T).await });
    read_command(&mut peer).await;
    peer.get_mut().write_all(b"\r\n>\r\n").await.unwrap();
    let mut pdu = [0u8; 3];
    peer.read_exact(&mut pdu).await.unwrap();
    assert_eq!(&pdu, b"AB\x1a");
    peer.get_mut().write_all(b"\r\nOK\r\n").await.unwrap();
    assert!(ask.await.unwrap().is_ok());
}

#[tokio::test]
async fn cmt_carries_its_pdu_on_the_next_line() {
    let (_client, mut urcs, mut peer) = setup();
    peer.get_mut()
        .write_all(b"\r\n+CMT: ,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n")
        .await
        .unwrap();
    assert_eq!(
        urcs.recv().await,
        Some(Urc::Message(
            "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07".into()
        ))
    );
}

#[tokio::test]
async fn a_closed_port_fails_the_command() {
    let (client, _urcs, peer) = setup();
    let ask = tokio::spawn(async move { client.command("AT", T).await });
    tokio::task::yield_now().await;
    drop(peer);
    assert!(matches!(ask.await.unwrap(), Err(AtError::Closed(_))));
}
