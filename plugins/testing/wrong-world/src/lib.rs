//! Test fixture `wrong_world`: a valid WASI 0.2 component that exports the
//! world `evil:other/greeter` (`greet: func() -> string`) instead of
//! `postern:plugin/deliverer`. Upload and `postern plugin check` must refuse
//! it ("wrong world").

wit_bindgen::generate!({
    path: "wit",
    world: "evil:other/greeter",
});

struct Greeter;

impl Guest for Greeter {
    fn greet() -> String {
        "hello from the wrong world".to_string()
    }
}

export!(Greeter);
