//! Detects a stream's compression from its first bytes and wraps it in a streaming decoder.
//! Never buffers more than the decoders' own windows; never trusts a file name or media type.

use std::fmt;
use std::io::{self, BufRead, Read};

/// A stream's compression, as its magic bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No known magic: taken as a plain tar.
    None,
    /// gzip (`1f 8b`), possibly several members as `pigz` writes them.
    Gzip,
    /// zstd (`28 b5 2f fd`), possibly several frames.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2: &[u8] = b"BZh";

/// Peeks at the first bytes of `input` (without consuming them) and names the compression.
///
/// # Errors
/// Reading fails, or the input is xz or bzip2, which strata does not decode (the error says so
/// and what to do).
pub fn detect(input: &mut impl BufRead) -> io::Result<Compression> {
    // One fill is enough: a tar header alone is 512 bytes, and a reader whose first read is
    // shorter than a magic is treated as plain input, whose tar parse then reports the problem.
    let buf = input.fill_buf()?;
    let head = &buf[..buf.len().min(6)];
    let unsupported = |name: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{name}-compressed input is not supported; decompress it first (gzip and zstd are)"
            ),
        )
    };
    Ok(if head.starts_with(GZIP) {
        Compression::Gzip
    } else if head.starts_with(ZSTD) {
        Compression::Zstd
    } else if head.starts_with(XZ) {
        return Err(unsupported("xz"));
    } else if head.starts_with(BZIP2) {
        return Err(unsupported("bzip2"));
    } else {
        Compression::None
    })
}

/// A streaming decoder chosen from the input's first bytes. [`Decoder::into_inner`] gives the
/// input back, so a caller can keep reading (and hashing) whatever follows the compressed data.
pub enum Decoder<R: BufRead> {
    /// Plain input, passed through.
    Plain(R),
    /// gzip.
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    /// zstd.
    Zstd(Box<zstd::stream::read::Decoder<'static, R>>),
}

impl<R: BufRead> fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decoder({})", self.kind())
    }
}

impl<R: BufRead> Decoder<R> {
    /// Detects the compression of `input` and wraps it.
    ///
    /// # Errors
    /// As [`detect`], or the zstd decoder cannot be set up.
    pub fn new(mut input: R) -> io::Result<Decoder<R>> {
        Ok(match detect(&mut input)? {
            Compression::None => Decoder::Plain(input),
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
            }
            Compression::Zstd => {
                Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(input)?))
            }
        })
    }

    /// The compression being decoded.
    pub fn kind(&self) -> Compression {
        match self {
            Decoder::Plain(_) => Compression::None,
            Decoder::Gzip(_) => Compression::Gzip,
            Decoder::Zstd(_) => Compression::Zstd,
        }
    }

    /// The input, positioned after what the decoder consumed.
    pub fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => (*d).into_inner(),
            Decoder::Zstd(d) => (*d).finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Wraps `input` in the decoder its first bytes call for; returns what was detected.
///
/// # Errors
/// As [`detect`], or the zstd decoder cannot be set up.
pub fn decompress<R: BufRead>(input: R) -> io::Result<(Compression, Decoder<R>)> {
    let d = Decoder::new(input)?;
    Ok((d.kind(), d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn payload() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn roundtrip(bytes: &[u8]) -> (Compression, Vec<u8>) {
        let (kind, mut r) = decompress(io::BufReader::new(bytes)).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (kind, out)
    }

    #[test]
    fn decompress_plain_passes_through() {
        let p = payload();
        assert_eq!(roundtrip(&p), (Compression::None, p));
    }

    #[test]
    fn decompress_gzip_multi_member_is_decoded_whole() {
        let p = payload();
        let mut gz = Vec::new();
        for half in p.chunks(p.len() / 2) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(half).unwrap();
            gz.extend(e.finish().unwrap());
        }
        assert_eq!(roundtrip(&gz), (Compression::Gzip, p));
    }

    #[test]
    fn decompress_zstd_is_decoded() {
        let p = payload();
        let z = zstd::stream::encode_all(&p[..], 1).unwrap();
        assert_eq!(roundtrip(&z), (Compression::Zstd, p));
    }

    #[test]
    fn decompress_xz_is_refused_with_hint() {
        let err = decompress(io::BufReader::new(&b"\xfd7zXZ\0rest"[..]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("xz-compressed"), "{err}");
    }

    #[test]
    fn detect_short_input_is_plain() {
        assert_eq!(detect(&mut &b"\x1f"[..]).unwrap(), Compression::None);
        assert_eq!(detect(&mut &b""[..]).unwrap(), Compression::None);
    }
}
