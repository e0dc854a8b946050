//! Compressed request bodies (`Content-Encoding`), decompressed within a
//! limit: a small body that expands past it (a zip bomb) is refused with
//! `413` once the limit is reached, without ever holding more than the
//! limit in memory.

use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use std::io::Read;

/// The body as the client meant it: decoded as its `Content-Encoding`
/// says (a list is applied last first), at most `limit` bytes.
pub(crate) fn body(headers: &HeaderMap, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut encodings = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::UnsupportedEncoding("(not text)".into()))?;
        encodings.extend(
            value
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty()),
        );
    }
    let mut body = body;
    for encoding in encodings.iter().rev() {
        body = match encoding.as_str() {
            "identity" => body,
            "gzip" | "x-gzip" => read_limited(flate2::read::MultiGzDecoder::new(&body[..]), limit)
                .map_err(|e| e.or(ApiError::BadCompression("gzip")))?,
            "deflate" => deflate(&body, limit)?,
            "br" => read_limited(
                brotli_decompressor::Decompressor::new(&body[..], 8192),
                limit,
            )
            .map_err(|e| e.or(ApiError::BadCompression("brotli")))?,
            "zstd" => {
                let decoder = ruzstd::decoding::StreamingDecoder::new(&body[..])
                    .map_err(|_| ApiError::BadCompression("zstd"))?;
                read_limited(decoder, limit).map_err(|e| e.or(ApiError::BadCompression("zstd")))?
            }
            other => return Err(ApiError::UnsupportedEncoding(other.to_owned())),
        };
    }
    if body.len() > limit {
        return Err(ApiError::DecompressedTooLarge { limit });
    }
    Ok(body)
}

/// HTTP's `deflate` is zlib-wrapped; some clients send the raw stream.
pub(crate) fn deflate(body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    match read_limited(flate2::read::ZlibDecoder::new(body), limit) {
        Ok(out) => Ok(out),
        Err(Limited::Over(_)) => Err(ApiError::DecompressedTooLarge { limit }),
        Err(Limited::Bad) => read_limited(flate2::read::DeflateDecoder::new(body), limit)
            .map_err(|e| e.or(ApiError::BadCompression("deflate"))),
    }
}

/// Why decompression stopped.
#[derive(Debug)]
pub(crate) enum Limited {
    /// The output passed the limit.
    Over(usize),
    /// The input is not valid data of its format.
    Bad,
}

impl Limited {
    /// The error to answer: `413` over the limit, else `bad`.
    fn or(self, bad: ApiError) -> ApiError {
        match self {
            Limited::Over(limit) => ApiError::DecompressedTooLarge { limit },
            Limited::Bad => bad,
        }
    }
}

fn read_limited(reader: impl Read, limit: usize) -> Result<Vec<u8>, Limited> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| Limited::Bad)?;
    if out.len() > limit {
        return Err(Limited::Over(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_and_deflate_and_identity_decode() {
        let data = b"{\"message\": \"hello\"}".to_vec();
        assert_eq!(body(&headers("gzip"), gzip(&data), 1000).unwrap(), data);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        assert_eq!(
            body(&headers("deflate"), z.finish().unwrap(), 1000).unwrap(),
            data
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&data).unwrap();
        assert_eq!(
            body(&headers("deflate"), raw.finish().unwrap(), 1000).unwrap(),
            data
        );
        assert_eq!(body(&HeaderMap::new(), data.clone(), 1000).unwrap(), data);
        assert_eq!(
            body(&headers("identity"), data.clone(), 1000).unwrap(),
            data
        );
    }

    #[test]
    fn zstd_decodes() {
        let data = b"{\"message\": \"hello zstd\"}".repeat(50);
        let packed = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(packed.len() < data.len());
        assert_eq!(body(&headers("zstd"), packed, 10_000).unwrap(), data);
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        assert!(matches!(
            body(&headers("gzip"), bomb, 16 * 1024 * 1024),
            Err(ApiError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_unknown_encodings_are_refused_clearly() {
        for (enc, want) in [("gzip", "gzip"), ("br", "brotli"), ("zstd", "zstd")] {
            match body(&headers(enc), b"not compressed at all".to_vec(), 1000) {
                Err(ApiError::BadCompression(f)) => assert_eq!(f, want),
                other => panic!("{enc}: {other:?}"),
            }
        }
        assert!(matches!(
            body(&headers("compress"), b"x".to_vec(), 1000),
            Err(ApiError::UnsupportedEncoding(e)) if e == "compress"
        ));
        // A truncated gzip stream.
        let mut cut = gzip(&[7u8; 10_000]);
        cut.truncate(cut.len() / 2);
        assert!(body(&headers("gzip"), cut, 1_000_000).is_err());
    }
}
