//! Thumbnails of image files, made when an upload completes. Decoding untrusted images is
//! bounded three ways — the file's size, the image's pixel count and the decoder's
//! allocations — and runs on the blocking pool, a few at a time, never on the async
//! runtime's threads.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, metadata::Orientation};

use crate::domain::{ImageSize, drive::Thumbnail};

/// Larger files are not previewed (they are read whole into memory to decode).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;
/// Larger images (in pixels) are not decoded: a small file can claim a huge canvas.
pub const MAX_PIXELS: u64 = 50_000_000;
/// The longer side of a thumbnail.
pub const EDGE: u32 = 320;
/// What the decoder may allocate, all buffers together.
const MAX_ALLOC: u64 = 512 << 20;
/// JPEG quality of thumbnails: small, and fine at this size.
const QUALITY: u8 = 80;

/// Whether files of this (sniffed) content type get a thumbnail.
pub fn previewable(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// The image's displayed size and its thumbnail; `None` when the bytes do not decode
/// within the limits (a broken or hostile file is simply not previewed).
pub fn make(bytes: &[u8]) -> Option<(ImageSize, Thumbnail)> {
    make_within(bytes, MAX_PIXELS)
}

fn make_within(bytes: &[u8], max_pixels: u64) -> Option<(ImageSize, Thumbnail)> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().ok()?;
    let (width, height) = decoder.dimensions();
    // Checked from the header, before anything is decoded.
    if u64::from(width) * u64::from(height) > max_pixels || width == 0 || height == 0 {
        return None;
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).ok()?;
    image.apply_orientation(orientation);
    let size = ImageSize {
        width: image.width(),
        height: image.height(),
    };
    let small = flatten(&image.thumbnail(EDGE, EDGE));
    let mut data = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut data, QUALITY)
        .encode_image(&small)
        .ok()?;
    let thumbnail = Thumbnail {
        data,
        size: ImageSize {
            width: small.width(),
            height: small.height(),
        },
    };
    Some((size, thumbnail))
}

/// RGB for JPEG, transparent parts on white (as a page would show them) rather than on
/// whatever colour the transparent pixels happen to hold.
fn flatten(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // a/255 of the colour, the rest white; the result is at most 255.
            u8::try_from((c * a + 255 * (255 - a)) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbaImage::from_fn(width, height, |x, _| {
            image::Rgba([(x % 256) as u8, 0, 0, if x < width / 2 { 0 } else { 255 }])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(image)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn a_wide_image_gets_a_jpeg_thumbnail_at_most_edge_wide_keeping_its_shape() {
        let (size, thumb) = make(&png(1000, 500)).expect("thumbnail");
        assert_eq!((size.width, size.height), (1000, 500));
        assert_eq!((thumb.size.width, thumb.size.height), (320, 160));
        let decoded = image::load_from_memory(&thumb.data).expect("decodes");
        assert_eq!(
            image::guess_format(&thumb.data).ok(),
            Some(image::ImageFormat::Jpeg)
        );
        // The transparent left half is white, not black.
        let left = decoded.to_rgb8().get_pixel(5, 80).0;
        assert!(left.iter().all(|c| *c > 230), "{left:?}");
    }

    #[test]
    fn broken_and_oversized_images_get_none() {
        assert!(make(b"\x89PNG\r\n\x1a\nnot really").is_none());
        let image = png(1000, 500);
        assert!(make_within(&image, 500_000).is_some());
        assert!(make_within(&image, 499_999).is_none());
    }
}
