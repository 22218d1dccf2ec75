//! Home Assistant MQTT discovery: one retained config message per input
//! (a binary sensor) and per output (a switch), so a unit shows up in Home
//! Assistant with its inputs and outputs, fed by its `status` topic and
//! switched through its `cmd` topic. Pure, so it is tested natively.

use serde_json::{Value, json};

/// One discovery message: absolute topic (for the host: leading `/`) and
/// payload.
#[derive(Debug, PartialEq)]
pub struct Config {
    /// `/<discovery prefix>/<component>/<unit>_<id>/config`.
    pub topic: String,
    /// The entity's config.
    pub payload: Value,
}

/// What the discovery needs to know of the unit.
pub struct Unit<'a> {
    /// The unit's id.
    pub id: &'a str,
    /// Its base topic on the server.
    pub base: &'a str,
    /// Input names, input 1 first.
    pub inputs: &'a [String],
    /// Number of outputs.
    pub outputs: u8,
    /// The ALARM output.
    pub alarm_output: u8,
}

/// The discovery configs of `unit` under `prefix` (Home Assistant's default
/// is `homeassistant`).
pub fn configs(prefix: &str, unit: &Unit) -> Vec<Config> {
    let device = json!({
        "identifiers": [unit.id],
        "name": unit.id,
        "manufacturer": "larm",
    });
    let common = |id: &str, name: &str| {
        json!({
            "unique_id": format!("{}_{id}", unit.id),
            "object_id": format!("{}_{id}", unit.id),
            "name": name,
            "state_topic": format!("{}/status", unit.base),
            "availability_topic": format!("{}/state", unit.base),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        })
    };
    let mut configs = Vec::new();
    for (i, name) in unit.inputs.iter().enumerate() {
        let id = format!("in{}", i + 1);
        let mut payload = common(&id, name);
        payload["value_template"] =
            format!("{{{{ 'ON' if value_json.inputs[{i}].closed else 'OFF' }}}}").into();
        configs.push(Config {
            topic: format!("/{prefix}/binary_sensor/{}_{id}/config", unit.id),
            payload,
        });
    }
    for n in 1..=unit.outputs {
        let id = format!("out{n}");
        let name = if n == unit.alarm_output {
            "ALARM".to_string()
        } else {
            format!("Output {n}")
        };
        let mut payload = common(&id, &name);
        let command =
            |on: bool| json!({"v": super::schema::VERSION, "outputs": {n.to_string(): on}});
        payload["value_template"] = format!(
            "{{{{ 'ON' if value_json.outputs[{}].on else 'OFF' }}}}",
            n - 1
        )
        .into();
        payload["command_topic"] = format!("{}/cmd", unit.base).into();
        payload["payload_on"] = command(true).to_string().into();
        payload["payload_off"] = command(false).to_string().into();
        payload["state_on"] = "ON".into();
        payload["state_off"] = "OFF".into();
        configs.push(Config {
            topic: format!("/{prefix}/switch/{}_{id}/config", unit.id),
            payload,
        });
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_binary_sensors_and_outputs_switches() {
        let inputs = ["Door".to_string(), "Pump".to_string()];
        let unit = Unit {
            id: "larm-1a2b",
            base: "larm/larm-1a2b",
            inputs: &inputs,
            outputs: 2,
            alarm_output: 2,
        };
        let configs = configs("homeassistant", &unit);
        assert_eq!(configs.len(), 4);
        let door = &configs[0];
        assert_eq!(
            door.topic,
            "/homeassistant/binary_sensor/larm-1a2b_in1/config"
        );
        assert_eq!(door.payload["name"], "Door");
        assert_eq!(door.payload["state_topic"], "larm/larm-1a2b/status");
        assert_eq!(
            door.payload["value_template"],
            "{{ 'ON' if value_json.inputs[0].closed else 'OFF' }}"
        );
        let alarm = &configs[3];
        assert_eq!(alarm.topic, "/homeassistant/switch/larm-1a2b_out2/config");
        assert_eq!(alarm.payload["name"], "ALARM");
        assert_eq!(alarm.payload["command_topic"], "larm/larm-1a2b/cmd");
        // What Home Assistant sends back is a command the unit accepts.
        let on = alarm.payload["payload_on"].as_str().unwrap();
        let (_, checked) = crate::schema::check(on.as_bytes(), 2, 2).unwrap();
        assert_eq!(checked.outputs, [(2, true, None)]);
    }
}
