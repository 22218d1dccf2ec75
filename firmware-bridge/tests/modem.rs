//! The modem driver over a real serial path: the pseudo-terminal simulator,
//! in both profiles and with each misbehaviour.

use std::time::Duration;

use firmware_bridge::modem::at::AtError;
use firmware_bridge::modem::sim::{Profile, SimCard, SimEvent, SimModem, SimNetwork};
use firmware_bridge::modem::{Modem, ModemError, ModemEvent, Network, SimState};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn started(profile: Profile) -> (SimModem, Modem) {
    let sim = SimModem::start(profile).unwrap();
    let mut modem = Modem::open(sim.path(), 115_200).unwrap();
    assert_eq!(modem.init().await.unwrap(), SimState::Ready);
    (sim, modem)
}

/// The next SMS; registration news on the way is passed over.
async fn next_sms(modem: &mut Modem) -> firmware_bridge::modem::pdu::Sms {
    loop {
        match timeout(WAIT, modem.next_event()).await.unwrap() {
            Some(ModemEvent::Sms(sms)) => return sms,
            Some(ModemEvent::StatusChanged) => {}
            other => panic!("expected an SMS, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_registration_change_is_news_at_once() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    sim.set_network(SimNetwork::None);
    assert_eq!(
        timeout(WAIT, modem.next_event()).await.unwrap(),
        Some(ModemEvent::StatusChanged)
    );
    assert_eq!(modem.status().await.unwrap().network, Network::None);
}

async fn next_sim_event(events: &mut tokio::sync::broadcast::Receiver<SimEvent>) -> SimEvent {
    timeout(WAIT, events.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn lte_modem_status() {
    let (_sim, modem) = started(Profile::Ec2x).await;
    let status = modem.status().await.unwrap();
    assert_eq!(status.sim, SimState::Ready);
    assert_eq!((status.csq, status.bars), (20, 4));
    assert_eq!(
        status.network,
        Network::Lte,
        "found in CEREG though CREG says 0"
    );
    assert_eq!(status.operator.as_deref(), Some("Telia"));
    assert_eq!(status.imei.as_deref(), Some("861234567890123"));
    assert_eq!(status.iccid.as_deref(), Some("89460123456789012345"));
}

#[tokio::test]
async fn gsm_only_modem_status() {
    let (sim, modem) = started(Profile::Sim800).await;
    let status = modem.status().await.unwrap();
    assert_eq!(status.network, Network::Gsm);
    assert_eq!(status.iccid.as_deref(), Some("89460123456789012345"));
    sim.set_signal(5);
    sim.set_network(SimNetwork::None);
    let status = modem.status().await.unwrap();
    assert_eq!((status.bars, status.network), (1, Network::None));
    sim.set_signal(99);
    assert_eq!(modem.status().await.unwrap().bars, 0, "99 is unknown");
}

#[tokio::test]
async fn sim_pin_and_missing_sim() {
    let sim = SimModem::start(Profile::Ec2x).unwrap();
    sim.set_sim(SimCard::PinRequired);
    let mut modem = Modem::open(sim.path(), 115_200).unwrap();
    assert_eq!(modem.init().await.unwrap(), SimState::PinRequired);
    sim.set_sim(SimCard::Absent);
    assert_eq!(modem.sim().await.unwrap(), SimState::NotInserted);
    assert_eq!(modem.status().await.unwrap().network, Network::None);
}

#[tokio::test]
async fn receives_an_sms_and_deletes_it() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    sim.deliver_sms("+46701234567", "Larm: Källaren är våt! {€}");
    let sms = next_sms(&mut modem).await;
    assert_eq!(sms.sender.to_string(), "+46701234567");
    assert_eq!(sms.text, "Larm: Källaren är våt! {€}");
    assert_eq!(sim.stored(), 0, "read messages are deleted");
}

#[tokio::test]
async fn receives_a_long_ucs2_message_in_three_parts() {
    let (sim, mut modem) = started(Profile::Sim800).await;
    let text = "Pumphuset 🚨 larmar, ring Åsa! ".repeat(5);
    sim.deliver_sms("+46701234567", &text);
    assert_eq!(next_sms(&mut modem).await.text, text);
}

#[tokio::test]
async fn reads_what_arrived_while_it_was_down() {
    let sim = SimModem::start(Profile::Ec2x).unwrap();
    sim.store_sms_silently("+46701111111", "1234 STATUS");
    sim.store_sms_silently("Telia", "Välkommen");
    let mut modem = Modem::open(sim.path(), 115_200).unwrap();
    modem.init().await.unwrap();
    let stored = modem.read_stored().await.unwrap();
    let texts: Vec<_> = stored
        .iter()
        .map(|s| (s.sender.to_string(), s.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("+46701111111".into(), "1234 STATUS"),
            ("Telia".into(), "Välkommen")
        ]
    );
    assert_eq!(sim.stored(), 0);
}

#[tokio::test]
async fn sends_a_long_sms_in_parts() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    let mut events = sim.events();
    let text = "Input 3 (Frys) larmar. ".repeat(12);
    let refs = modem.send_sms("+46 70-123 45 67", &text).await.unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(
        next_sim_event(&mut events).await,
        SimEvent::SmsSent {
            to: "+46701234567".into(),
            text
        }
    );
    assert!(matches!(
        modem.send_sms("not a number", "x").await,
        Err(ModemError::Invalid(_))
    ));
}

#[tokio::test]
async fn sending_without_network_fails_with_the_modems_error() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    sim.set_network(SimNetwork::None);
    match modem.send_sms("+46701234567", "hej").await {
        Err(ModemError::At(AtError::Cms(_, code))) => assert_eq!(code, "331"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn garbage_and_urcs_in_the_middle_of_answers() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    sim.set_urc_mid_response(true);
    sim.send_garbage();
    let status = modem.status().await.unwrap();
    assert_eq!(status.network, Network::Lte);
    sim.deliver_sms("+46701234567", "still here");
    assert_eq!(next_sms(&mut modem).await.text, "still here");
}

#[tokio::test]
async fn full_storage_delays_delivery_until_there_is_room() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    sim.set_storage_capacity(0);
    sim.deliver_sms("+46701234567", "waiting");
    assert!(
        timeout(Duration::from_millis(300), modem.next_event())
            .await
            .is_err()
    );
    sim.set_storage_capacity(5);
    assert_eq!(next_sms(&mut modem).await.text, "waiting");
}

#[tokio::test]
async fn a_hung_modem_is_noticed_and_restarted() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    let mut events = sim.events();
    sim.set_silent(true);
    assert!(!modem.alive().await);
    sim.set_silent(false);
    sim.set_restart_delay(Duration::from_secs(2));
    assert_eq!(modem.restart().await.unwrap(), SimState::Ready);
    assert_eq!(next_sim_event(&mut events).await, SimEvent::Restarted);
    assert!(modem.alive().await);
    assert_eq!(modem.status().await.unwrap().network, Network::Lte);
}

#[tokio::test]
async fn a_modem_that_stops_answering_is_recovered() {
    let (sim, mut modem) = started(Profile::Sim800).await;
    assert!(
        !modem.recover_if_hung().await.unwrap(),
        "a healthy modem is left alone"
    );
    sim.set_silent(true);
    // The modem comes back only after a power cycle: here, a few seconds later.
    let waker = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        waker.set_silent(false);
    });
    assert!(modem.recover_if_hung().await.unwrap());
    assert!(modem.alive().await);
    sim.deliver_sms("+46701234567", "back");
    assert_eq!(next_sms(&mut modem).await.text, "back");
}

#[tokio::test]
async fn voice_call_alarm_and_incoming_calls() {
    let (sim, mut modem) = started(Profile::Ec2x).await;
    let mut events = sim.events();
    modem.dial("+46701234567").await.unwrap();
    assert_eq!(
        next_sim_event(&mut events).await,
        SimEvent::Dialled("+46701234567".into())
    );
    // While it rings, the modem still takes SMS.
    sim.deliver_sms("+46709999999", "during the call");
    assert_eq!(next_sms(&mut modem).await.text, "during the call");
    modem.hang_up().await.unwrap();
    assert_eq!(next_sim_event(&mut events).await, SimEvent::HungUp);
    sim.ring("+46709999999");
    assert_eq!(
        timeout(WAIT, modem.next_event()).await.unwrap(),
        Some(ModemEvent::Call(Some("+46709999999".into())))
    );
}

#[tokio::test]
async fn a_missing_port_is_a_clear_error() {
    match Modem::open(std::path::Path::new("/dev/ttyNOPE9"), 115_200) {
        Err(ModemError::Open(path, _)) => assert_eq!(path, std::path::Path::new("/dev/ttyNOPE9")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a port that does not exist"),
    }
}
