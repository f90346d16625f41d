//! The zip container around `export.bin` and `export.sig`, read and written in memory.

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use super::limits::ExportLimits;
use crate::error::{Error, ExportFormatError, ExportWriteError, Result};

/// Name of the zip entry holding the header and the protobuf export.
pub(crate) const BIN_ENTRY: &str = "export.bin";
/// Name of the zip entry holding the signatures.
pub(crate) const SIG_ENTRY: &str = "export.sig";

/// Deflate level of written files. Most of `export.bin` is random key bytes that do
/// not compress, so a higher level costs time and saves almost nothing.
const DEFLATE_LEVEL: i64 = 1;

/// Whether `bytes` start like a zip archive (a local file header, or the end record
/// of an empty archive).
pub(crate) fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// The decompressed `export.bin` and, when present, `export.sig` of a zip archive.
///
/// Accepts exactly these two entry names (so no path can point elsewhere), each at
/// most once, and stops reading an entry as soon as it passes its size limit,
/// whatever size the archive claims.
pub(crate) fn read(zip: &[u8], limits: &ExportLimits) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    check_end_record(zip)?;
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(zip_error)?;
    let mut bin = None;
    let mut sig = None;
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(zip_error)?;
        let (slot, name, limit) = match entry.name() {
            BIN_ENTRY => (&mut bin, BIN_ENTRY, limits.max_export_bin_size),
            SIG_ENTRY => (&mut sig, SIG_ENTRY, limits.max_export_sig_size),
            other => {
                return Err(Error::ExportFormat(ExportFormatError::UnexpectedEntry(
                    printable_name(other),
                )));
            }
        };
        if slot.is_some() {
            return Err(Error::ExportFormat(ExportFormatError::DuplicateEntry(name)));
        }
        let too_large = Error::ExportFormat(ExportFormatError::TooLarge { what: name, limit });
        if entry.size() > limit {
            return Err(too_large);
        }
        let mut content = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .take(limit.saturating_add(1))
            .read_to_end(&mut content)
            .map_err(|error| {
                Error::ExportFormat(ExportFormatError::Zip(format!("reading {name}: {error}")))
            })?;
        if content.len() as u64 > limit {
            return Err(too_large);
        }
        *slot = Some(content);
    }
    let bin = bin.ok_or(Error::ExportFormat(ExportFormatError::MissingEntry(
        BIN_ENTRY,
    )))?;
    Ok((bin, sig))
}

/// A zip archive holding `bin` and `sig`, byte-identical for the same input: fixed
/// entry order, timestamps (1980-01-01 00:00, zip's epoch), permissions and level.
pub(crate) fn write(bin: &[u8], sig: &[u8]) -> Result<Vec<u8>> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(bin.len() + sig.len() + 512)));
    for (name, content) in [(BIN_ENTRY, bin), (SIG_ENTRY, sig)] {
        zip.start_file(name, options).map_err(zip_error)?;
        zip.write_all(content).map_err(|error| {
            Error::ExportWrite(ExportWriteError::Zip(format!("{name}: {error}")))
        })?;
    }
    Ok(zip.finish().map_err(zip_error)?.into_inner())
}

/// Signature of the end-of-central-directory record.
const END_RECORD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
/// Length of that record without its comment.
const END_RECORD_LEN: usize = 22;
/// Entries an export may hold: `export.bin` and `export.sig`.
const MAX_ENTRIES: u16 = 2;

/// Checks the end-of-central-directory record before the zip reader sees the archive.
///
/// The zip reader parses every entry the record lists before the first name can be
/// checked, so a 60 MB archive of 700 000 empty entries would cost 400 MB and
/// seconds. Here the record must end the archive exactly (no trailing bytes, no
/// zip64), list at most two entries, and sit right after its central directory, so
/// that the reader finds this same record and parses at most two entries.
fn check_end_record(zip: &[u8]) -> Result<()> {
    let malformed = |reason: String| Error::ExportFormat(ExportFormatError::Zip(reason));
    let last = zip
        .len()
        .checked_sub(END_RECORD_LEN)
        .ok_or_else(|| malformed("archive is shorter than its end record".into()))?;
    let first = last.saturating_sub(usize::from(u16::MAX));
    let start = (first..=last)
        .rev()
        .find(|&start| {
            let record = &zip[start..];
            record.starts_with(END_RECORD_SIGNATURE)
                && END_RECORD_LEN + usize::from(u16_at(record, 20)) == record.len()
        })
        .ok_or_else(|| {
            malformed("archive does not end with an end-of-central-directory record".into())
        })?;
    let record = &zip[start..];
    let (entries_on_disk, entries) = (u16_at(record, 8), u16_at(record, 10));
    if entries > MAX_ENTRIES || entries_on_disk != entries {
        return Err(malformed(format!(
            "archive lists {entries} entries: expected at most {MAX_ENTRIES} (export.bin and export.sig)"
        )));
    }
    let directory_size = u64::from(u32_at(record, 12));
    let directory_offset = u64::from(u32_at(record, 16));
    if directory_offset + directory_size != start as u64 {
        return Err(malformed(
            "central directory does not end where the end record starts".into(),
        ));
    }
    Ok(())
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

fn zip_error(error: zip::result::ZipError) -> Error {
    Error::ExportFormat(ExportFormatError::Zip(error.to_string()))
}

/// An entry name fit for an error message: escaped, and cut to a sane length.
fn printable_name(name: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut printable: String = name.chars().take(MAX_CHARS).collect();
    if name.chars().nth(MAX_CHARS).is_some() {
        printable.push('…');
    }
    printable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip with the given entries, stored or deflated.
    fn zip_with(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            zip.start_file(
                *name,
                SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn writes_deterministically_and_reads_back() {
        let bin = vec![42u8; 10_000];
        let written = write(&bin, b"sig").unwrap();
        assert_eq!(written, write(&bin, b"sig").unwrap());
        assert!(looks_like_zip(&written));
        let (read_bin, read_sig) = read(&written, &ExportLimits::default()).unwrap();
        assert_eq!(read_bin, bin);
        assert_eq!(read_sig.as_deref(), Some(&b"sig"[..]));
        assert!(written.len() < 1_000, "deflated");
    }

    #[test]
    fn only_the_two_entry_names_are_accepted() {
        for name in [
            "../export.bin",
            "/export.bin",
            "dir/export.bin",
            "export.bin/",
            "EXPORT.BIN",
            "export.bin\0",
            "__MACOSX/._export.bin",
        ] {
            let zip = zip_with(
                &[("export.bin", b"a"), (name, b"b")],
                CompressionMethod::Stored,
            );
            assert_eq!(
                read(&zip, &ExportLimits::default()),
                Err(Error::ExportFormat(ExportFormatError::UnexpectedEntry(
                    name.to_owned()
                )))
            );
        }
        let long = "x".repeat(500);
        let zip = zip_with(&[(&long, b"b")], CompressionMethod::Stored);
        let Err(Error::ExportFormat(ExportFormatError::UnexpectedEntry(found))) =
            read(&zip, &ExportLimits::default())
        else {
            panic!("long name accepted");
        };
        assert_eq!(found.chars().count(), 65);
    }

    #[test]
    fn missing_or_duplicate_entries_are_rejected() {
        let zip = zip_with(&[("export.sig", b"s")], CompressionMethod::Stored);
        assert_eq!(
            read(&zip, &ExportLimits::default()),
            Err(Error::ExportFormat(ExportFormatError::MissingEntry(
                "export.bin"
            )))
        );
        let zip = zip_with(&[], CompressionMethod::Stored);
        assert!(looks_like_zip(&zip));
        assert_eq!(
            read(&zip, &ExportLimits::default()),
            Err(Error::ExportFormat(ExportFormatError::MissingEntry(
                "export.bin"
            )))
        );
        let (bin, sig) = read(
            &zip_with(&[("export.bin", b"b")], CompressionMethod::Stored),
            &ExportLimits::default(),
        )
        .unwrap();
        assert_eq!((bin, sig), (b"b".to_vec(), None));
    }

    #[test]
    fn entries_over_the_limit_are_rejected_without_inflating_them() {
        // 1 MiB of zeros deflates to about 1 KiB: a small zip bomb.
        let bomb = zip_with(
            &[("export.bin", &vec![0u8; 1 << 20])],
            CompressionMethod::Deflated,
        );
        assert!(bomb.len() < 8 << 10);
        let limits = ExportLimits {
            max_export_bin_size: 1000,
            ..ExportLimits::default()
        };
        let too_large = Err(Error::ExportFormat(ExportFormatError::TooLarge {
            what: "export.bin",
            limit: 1000,
        }));
        assert_eq!(read(&bomb, &limits), too_large);

        // Lying about the size in both headers does not help: reading stops at the limit.
        let mut lying = bomb.clone();
        patch_sizes(&mut lying, 10);
        assert!(matches!(
            read(&lying, &limits),
            Err(Error::ExportFormat(ExportFormatError::TooLarge { .. })
                | Error::ExportFormat(ExportFormatError::Zip(_)))
        ));
    }

    #[test]
    fn archives_listing_many_entries_are_refused_before_parsing() {
        let names: Vec<String> = (0..1000).map(|i| format!("{i}")).collect();
        let entries: Vec<(&str, &[u8])> =
            names.iter().map(|name| (name.as_str(), &b""[..])).collect();
        let zip = zip_with(&entries, CompressionMethod::Stored);
        assert_eq!(
            read(&zip, &ExportLimits::default()),
            Err(Error::ExportFormat(ExportFormatError::Zip(
                "archive lists 1000 entries: expected at most 2 (export.bin and export.sig)".into()
            )))
        );
        let three = zip_with(
            &[("export.bin", b"a"), ("export.sig", b"b"), ("x", b"")],
            CompressionMethod::Stored,
        );
        assert!(
            matches!(read(&three, &ExportLimits::default()), Err(Error::ExportFormat(ExportFormatError::Zip(reason))) if reason.contains("3 entries"))
        );
    }

    #[test]
    fn the_end_record_must_end_the_archive() {
        let zip = write(b"bin", b"sig").unwrap();
        let mut trailing = zip.clone();
        trailing.push(0);
        assert!(
            matches!(read(&trailing, &ExportLimits::default()), Err(Error::ExportFormat(ExportFormatError::Zip(reason))) if reason.contains("does not end with"))
        );
        // A central directory offset that does not lead to the end record.
        let mut moved = zip.clone();
        let end = moved.len() - END_RECORD_LEN;
        moved[end + 16] ^= 1;
        assert!(
            matches!(read(&moved, &ExportLimits::default()), Err(Error::ExportFormat(ExportFormatError::Zip(reason))) if reason.contains("central directory"))
        );
        for len in 0..END_RECORD_LEN {
            assert!(read(&zip[zip.len() - len..], &ExportLimits::default()).is_err());
        }
    }

    /// Overwrites the uncompressed size of the first entry in its local and central headers.
    fn patch_sizes(zip: &mut [u8], size: u32) {
        let local = 0;
        zip[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
        let central = zip
            .windows(4)
            .position(|w| w == b"PK\x01\x02")
            .expect("central directory");
        zip[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    }
}
