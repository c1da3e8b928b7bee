//! Host bindings of `wit/plugin.wit` (world `deliverer`). Imports are
//! synchronous and infallible (`config.get`, `log.log` cannot trap); exports
//! are called asynchronously because WASI and wasi:http are async here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "deliverer",
    exports: { default: async },
});

pub(crate) use self::postern::plugin::log::Level;
