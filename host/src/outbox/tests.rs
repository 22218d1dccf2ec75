use super::record::Alarm;
use super::*;

fn alarm(input: u8) -> Item {
    Item::Report(Report::Alarm(Alarm {
        input,
        name: format!("Input {input}"),
        text: "Larm: Frysrummet är för varmt!".into(),
        at: 1_700_000_000,
    }))
}

fn sms(to: &str) -> Item {
    Item::Sms {
        to: to.into(),
        text: "Larm".into(),
    }
}

fn call(number: &str) -> Item {
    Item::Call {
        number: number.into(),
        ring_s: 3,
    }
}

fn new(item: Item, step: Option<Step>) -> New {
    New {
        alarm: step.is_some(),
        item,
        step,
    }
}

/// An alarm's three steps, as the unit queues them.
fn alarm_event(input: u8) -> Vec<New> {
    vec![
        new(sms("+4670"), Some(Step::Sms)),
        new(call("+4670"), Some(Step::Call)),
        new(alarm(input), Some(Step::Server)),
    ]
}

fn route() -> Vec<Step> {
    vec![Step::Server, Step::Sms, Step::Call]
}

#[test]
fn entries_survive_a_reopen_and_ids_keep_growing() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let outbox = Outbox::open(dir.path(), Vec::new(), Duration::from_secs(60)).unwrap();
        outbox
            .push(vec![new(alarm(1), None), new(sms("+4670"), None)])
            .unwrap()
    };
    assert_eq!(ids[1], ids[0] + 1);
    let outbox = Outbox::open(dir.path(), Vec::new(), Duration::from_secs(60)).unwrap();
    assert_eq!(outbox.summary().depth, 2);
    let reports = outbox.take_due(false, 10);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].item, alarm(1));
    assert_eq!(reports[0].id, ids[0]);
    // Taken entries are in flight: not handed out twice.
    assert!(outbox.take_due(false, 10).is_empty());
    outbox.done(ids[0]).unwrap();
    let more = outbox.push(vec![new(alarm(2), None)]).unwrap();
    assert!(more[0] > ids[1]);
    drop(outbox);
    let outbox = Outbox::open(dir.path(), Vec::new(), Duration::from_secs(60)).unwrap();
    let left: Vec<_> = outbox
        .take_due(true, 10)
        .into_iter()
        .chain(outbox.take_due(false, 10))
        .map(|e| e.id)
        .collect();
    assert_eq!(left, [ids[1], more[0]]);
}

#[test]
fn without_a_route_everything_goes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), Vec::new(), Duration::from_secs(60)).unwrap();
    outbox.push(alarm_event(1)).unwrap();
    assert_eq!(outbox.take_due(true, 10).len(), 2);
    assert_eq!(outbox.take_due(false, 10).len(), 1);
    assert!(!outbox.urgent_due(), "the alarm is in flight");
}

#[test]
fn an_acknowledged_report_makes_the_sms_and_call_unneeded() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), route(), Duration::from_secs(60)).unwrap();
    outbox.push(alarm_event(1)).unwrap();
    assert!(outbox.take_due(true, 10).is_empty(), "SMS and call wait");
    let report = outbox.take_due(false, 10);
    assert_eq!(report.len(), 1);
    outbox.done(report[0].id).unwrap();
    assert_eq!(outbox.summary().depth, 0);
}

#[test]
fn an_unacknowledged_report_escalates_to_sms_then_a_failed_sms_to_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), route(), Duration::from_millis(200)).unwrap();
    outbox.push(alarm_event(1)).unwrap();
    let report = outbox.take_due(false, 10);
    assert!(outbox.take_due(true, 10).is_empty());
    std::thread::sleep(Duration::from_millis(250));
    let step2 = outbox.take_due(true, 10);
    assert_eq!(step2.len(), 1, "only the SMS: the call waits for it");
    assert_eq!(step2[0].item, sms("+4670"));
    // The SMS fails: the call goes at once.
    outbox.failed(step2[0].id, Duration::from_secs(60));
    let step3 = outbox.take_due(true, 10);
    assert_eq!(step3.len(), 1);
    assert_eq!(step3[0].item, call("+4670"));
    // The report still goes to the server when it can.
    outbox.retry_later(report[0].id);
    assert!(outbox.urgent_due());
}

#[test]
fn a_delivered_sms_makes_the_call_unneeded_and_releases_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), route(), Duration::from_millis(100)).unwrap();
        outbox.push(alarm_event(1)).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(outbox.take_due(true, 10).len(), 1);
    }
    // After a restart the released SMS is due again (it was not confirmed),
    // and the call still waits on it.
    let outbox = Outbox::open(dir.path(), route(), Duration::from_secs(60)).unwrap();
    let step2 = outbox.take_due(true, 10);
    assert_eq!(step2.len(), 1);
    assert_eq!(step2[0].item, sms("+4670"));
    outbox.done(step2[0].id).unwrap();
    assert!(outbox.take_due(true, 10).is_empty());
    assert_eq!(outbox.summary().depth, 1, "only the report is left");
}

#[test]
fn a_failed_attempt_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), Vec::new(), Duration::from_secs(60)).unwrap();
    outbox.push(vec![new(sms("+4670"), None)]).unwrap();
    let first = outbox.take_due(true, 10);
    let wait = outbox
        .failed(first[0].id, Duration::from_secs(300))
        .unwrap();
    assert_eq!(wait, Duration::from_secs(2));
    assert!(outbox.take_due(true, 10).is_empty());
    let summary = outbox.summary();
    assert_eq!((summary.depth, summary.oldest_s), (1, Some(0)));
}

#[test]
fn alarms_go_before_routine_replies() {
    let outbox = Outbox::in_memory(Vec::new(), Duration::from_secs(60)).unwrap();
    outbox.push(vec![new(sms("+46701"), None)]).unwrap();
    outbox.push(alarm_event(1)).unwrap();
    outbox.push(vec![new(sms("+46702"), None)]).unwrap();
    // While a call rings, the next call waits and SMS go on.
    let first = outbox.take_next_for_modem(false).unwrap();
    let order: Vec<Item> = std::iter::once(first)
        .chain(std::iter::from_fn(|| outbox.take_next_for_modem(true)))
        .map(|e| e.item)
        .collect();
    assert_eq!(
        order,
        [sms("+4670"), call("+4670"), sms("+46701"), sms("+46702")]
    );
    outbox
        .push(vec![new(call("+4671"), None), new(sms("+4672"), None)])
        .unwrap();
    assert_eq!(
        outbox.take_next_for_modem(false).unwrap().item,
        sms("+4672")
    );
    assert_eq!(
        outbox.take_next_for_modem(true).unwrap().item,
        call("+4671")
    );
}

#[test]
fn reports_keep_their_order() {
    let outbox = Outbox::in_memory(Vec::new(), Duration::from_secs(60)).unwrap();
    outbox.push(vec![new(alarm(1), None)]).unwrap();
    outbox
        .push(vec![new(alarm(2), Some(Step::Server))])
        .unwrap();
    let order: Vec<Item> = outbox
        .take_due(false, 10)
        .into_iter()
        .map(|e| e.item)
        .collect();
    assert_eq!(order, [alarm(1), alarm(2)]);
}
