//! The LED engine played on the simulated board, on tokio's virtual clock:
//! the board's LED timeline shows the blink codes a person would count.

use std::sync::Arc;
use std::time::Duration;

use firmware_bridge::board::{Board, Led, SimBoard};
use firmware_bridge::leds::{self, BLINK_OFF, BLINK_ON, ErrorCode, Network, PAUSE, UnitState};
use tokio::sync::watch;

/// Lit periods of `led` in the board's timeline.
fn blinks(board: &SimBoard, led: Led) -> usize {
    board
        .led_timeline()
        .iter()
        .filter(|c| c.led == led && c.on)
        .count()
}

fn cycle(n: u32) -> Duration {
    (BLINK_ON + BLINK_OFF) * n + PAUSE
}

#[tokio::test(start_paused = true)]
async fn red_blinks_three_times_for_no_network_and_stops_when_it_clears() {
    let board = Arc::new(SimBoard::new(1, 1));
    let (state, states) = watch::channel(UnitState {
        network: Network::Lte,
        errors: [ErrorCode::NoNetwork].into(),
        ..UnitState::default()
    });
    let driver = tokio::spawn(leds::drive(board.clone() as Arc<dyn Board>, states));

    tokio::time::sleep(cycle(3)).await;
    assert_eq!(blinks(&board, Led::Red), 3, "one group of three");
    assert_eq!(blinks(&board, Led::Green), 1, "LTE: one blink every 2.1 s");
    tokio::time::sleep(cycle(3) * 2).await;
    assert_eq!(blinks(&board, Led::Red), 9);

    state.send_replace(UnitState::default());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let before = blinks(&board, Led::Red);
    tokio::time::sleep(cycle(3) * 3).await;
    assert_eq!(blinks(&board, Led::Red), before, "cleared: no more blinks");
    assert_eq!(board.leds(), [false; 4]);

    state.send_replace(UnitState {
        server_connected: true,
        busy: true,
        ..UnitState::default()
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        board.leds(),
        [true, false, true, false],
        "blue and yellow steady"
    );
    drop(state);
    driver.await.unwrap();
}
