//! Writes the foreign-language sources (Kotlin, Swift, Python) for the built library.
//!
//! ```sh
//! cargo build -p kith-mobile
//! cargo run -p kith-mobile --bin uniffi-bindgen -- generate \
//!     --language python --out-dir bindings/python target/debug/libkith_mobile.so
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
