//! Bounds on what the reader accepts, so that a hostile file cannot exhaust memory.

/// Size and count limits applied while reading an export file.
///
/// The defaults hold the largest files real servers write (the key server caps a file
/// at 500 000 keys, about 16 MB of `export.bin`) with room to spare, and stop zip bombs
/// and key floods long before they hurt a phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportLimits {
    /// Largest input accepted: the zip archive, or a bare `export.bin`.
    pub max_file_size: u64,
    /// Largest `export.bin` accepted after decompression.
    pub max_export_bin_size: u64,
    /// Largest `export.sig` accepted after decompression.
    pub max_export_sig_size: u64,
    /// Most keys accepted, `keys` and `revised_keys` together.
    pub max_keys: u64,
}

impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            max_file_size: 64 << 20,
            max_export_bin_size: 64 << 20,
            // Ten signatures (the most GAEN clients check) take about 1.2 KiB.
            max_export_sig_size: 64 << 10,
            max_keys: 1_000_000,
        }
    }
}
