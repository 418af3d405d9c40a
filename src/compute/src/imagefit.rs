//! Whether an image may fill a flavor's root disk, as Nova's API decides before it accepts a
//! create, rebuild or resize; and whether the images an image links to (its `kernel_id` and
//! `ramdisk_id`) are ones the server's project may boot.
//!
//! Nova compares the image's `size` with the flavor's root disk at the API and its virtual
//! size on the compute host (libvirt's `verify_base_size`, which fails the build). onebox
//! knows the virtual size at upload time (`qemu-img info`), so both are checked here and a
//! 50 TiB qcow2 never reaches a 1 GiB flavor's host. A `disk=0` flavor ("as large as the
//! image") is refused to non-admins for image-backed servers, Nova's default policy for
//! `os_compute_api:servers:create:zero_disk_flavor` since Stein (onebox has no volumes to
//! boot from instead); an admin's is capped at `[compute] zero_disk_max_gb`.

use model::Context;
use model::compute::Flavor;

use crate::images::ImageInfo;
use crate::{Compute, Error, Result};

const GIB: u64 = 1024 * 1024 * 1024;

impl ImageInfo {
    /// The bytes the image needs on a root disk: its virtual size, or its file's size when
    /// that is larger or the virtual size is unknown.
    pub fn disk_bytes(&self) -> u64 {
        self.size_bytes.max(self.virtual_size_bytes.unwrap_or(0))
    }

    /// The linked images of this image (`kernel_id`, `ramdisk_id`) that it names.
    pub fn linked_ids(&self) -> impl Iterator<Item = &str> {
        ["kernel_id", "ramdisk_id"]
            .into_iter()
            .filter_map(|k| self.property(k))
            .filter(|v| !v.is_empty())
    }
}

/// Nova's `FlavorDiskSmallerThanImage`.
fn smaller_than_image(flavor_bytes: u64, image_bytes: u64) -> Error {
    Error::BadRequest(format!(
        "Flavor's disk is too small for requested image. Flavor disk is {flavor_bytes} bytes, image is {image_bytes} bytes."
    ))
}

impl Compute {
    /// Nova's `_validate_flavor_image_nostatus` for a root disk taken from the flavor: the
    /// image's memory and disk needs against `flavor`.
    pub(crate) fn check_image_fits(
        &self,
        ctx: &Context,
        flavor: &Flavor,
        image: &ImageInfo,
    ) -> Result<()> {
        if flavor.ram_mb < image.min_ram_mb {
            return Err(Error::BadRequest(
                "Flavor's memory is too small for requested image.".into(),
            ));
        }
        let need = image.disk_bytes();
        if flavor.disk_gb > 0 {
            let dest = flavor.disk_gb.saturating_mul(GIB);
            if need > dest {
                return Err(smaller_than_image(dest, need));
            }
            let min_disk = image.min_disk_gb.saturating_mul(GIB);
            if min_disk > dest {
                return Err(Error::BadRequest(format!(
                    "Flavor's disk is smaller than the minimum size specified in image metadata. Flavor disk is {dest} bytes, minimum size is {min_disk} bytes."
                )));
            }
            return Ok(());
        }
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "Only volume-backed servers are allowed for flavors with zero disk.".into(),
            ));
        }
        // The root disk will be as large as the image: never more than the box allows.
        let cap = self.cfg.zero_disk_max_gb.saturating_mul(GIB);
        let min_disk = image.min_disk_gb.saturating_mul(GIB);
        if need.max(min_disk) > cap {
            return Err(smaller_than_image(cap, need.max(min_disk)));
        }
        Ok(())
    }

    /// The image `id` if `ctx` may boot it and may see every image it links to; else the id
    /// of the first that cannot be found (Nova: `Image <id> could not be found.`).
    pub(crate) async fn find_bootable(
        &self,
        ctx: &Context,
        id: &str,
    ) -> std::result::Result<ImageInfo, String> {
        let image = self
            .images
            .find(ctx, id)
            .await
            .ok_or_else(|| id.to_owned())?;
        for linked in image.linked_ids() {
            if self.images.find_linked(ctx, linked).await.is_none() {
                return Err(linked.to_owned());
            }
        }
        Ok(image)
    }
}

/// A server's `auto_disk_config` from a request's `OS-DCF:diskConfig` (`Some(true)` for
/// `AUTO`) and its image: without one in the request, the image's `auto_disk_config`
/// property read as a boolean; an image whose property is `disabled` refuses `AUTO`.
pub(crate) fn auto_disk_config(image: Option<&ImageInfo>, requested: Option<bool>) -> Result<bool> {
    let prop = image.and_then(|i| {
        i.properties
            .iter()
            .find(|(k, _)| k == "auto_disk_config")
            .map(|(_, v)| v.as_str())
    });
    if requested == Some(true)
        && let (Some(i), Some(p)) = (image, prop)
        && p.trim().eq_ignore_ascii_case("disabled")
    {
        return Err(Error::BadRequest(format!(
            "Requested image {} has automatic disk resize disabled.",
            i.id
        )));
    }
    Ok(requested.unwrap_or_else(|| {
        prop.is_some_and(|p| {
            matches!(
                p.trim().to_ascii_lowercase().as_str(),
                "1" | "t" | "true" | "on" | "y" | "yes"
            )
        })
    }))
}

/// Nova's fault for an image (or an image it links to) the caller cannot see.
pub(crate) fn image_not_found(id: &str) -> Error {
    Error::BadRequest(format!("Image {id} could not be found."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(prop: Option<&str>) -> ImageInfo {
        ImageInfo {
            id: "img".into(),
            name: "img".into(),
            min_disk_gb: 0,
            min_ram_mb: 0,
            size_bytes: 0,
            virtual_size_bytes: None,
            properties: prop
                .map(|p| vec![("auto_disk_config".to_owned(), p.to_owned())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn disk_config_comes_from_the_request_else_the_image() {
        // Asked for: taken as asked.
        assert!(auto_disk_config(Some(&image(None)), Some(true)).expect("auto"));
        assert!(!auto_disk_config(Some(&image(Some("True"))), Some(false)).expect("manual"));
        // Not asked for: the image's property read as Nova reads booleans.
        for (p, want) in [
            (Some("True"), true),
            (Some(" yes "), true),
            (Some("1"), true),
            (Some("false"), false),
            (Some("disabled"), false),
            (Some("maybe"), false),
            (None, false),
        ] {
            assert_eq!(
                auto_disk_config(Some(&image(p)), None).expect("ok"),
                want,
                "{p:?}"
            );
        }
        assert!(!auto_disk_config(None, None).expect("no image"));
        // An image that disables it refuses AUTO, not MANUAL.
        let e = auto_disk_config(Some(&image(Some("Disabled"))), Some(true)).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "Requested image img has automatic disk resize disabled."
        );
        assert!(!auto_disk_config(Some(&image(Some("disabled"))), Some(false)).expect("manual"));
    }
}
