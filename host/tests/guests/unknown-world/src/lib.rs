//! A component that targets a world larm does not know (`acme:gadget`).

wit_bindgen::generate!({
    world: "gadget",
    path: "wit",
});

struct Gadget;

impl exports::acme::gadget::widget::Guest for Gadget {
    fn spin(times: u32) -> u32 {
        times.wrapping_mul(2)
    }
}

export!(Gadget);
