//! Compiles ui/app.slint (with the `ui` feature). Debug builds keep element debug info so
//! the UI tests can find elements by accessible label.
fn main() {
    #[cfg(feature = "ui")]
    {
        let debug = std::env::var("PROFILE")
            .map(|p| p == "debug")
            .unwrap_or(false);
        let config = slint_build::CompilerConfiguration::new().with_debug_info(debug);
        slint_build::compile_with_config("ui/app.slint", config).expect("ui/app.slint compiles");
    }
}
