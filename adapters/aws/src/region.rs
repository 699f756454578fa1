//! The region the clients use, which must be named: an AWS command that guessed one would
//! create its resources in a region the user did not choose.
//!
//! The SDK's default chain looks, in order, at `AWS_REGION` (then `AWS_DEFAULT_REGION`), at
//! the profile's `region` (`AWS_PROFILE`, else `default`, in `AWS_CONFIG_FILE`, else
//! `~/.aws/config`), and at the instance metadata (on EC2). When none names one, or the name
//! is blank, [`NoRegion`] says how to set one. Lambda's runtime always sets `AWS_REGION`.

/// No region is configured: its message, one line, says how to set one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no AWS region is set: export AWS_REGION=<region> (an emulator too), or give your profile one \
     with `aws configure set region <region>` (AWS_PROFILE selects the profile)"
)]
pub struct NoRegion;

/// The region `configured` names, if it names one that is not blank.
pub fn require_region(configured: Option<&str>) -> Result<String, NoRegion> {
    configured
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or(NoRegion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_region_is_used_as_it_is() {
        assert_eq!(
            require_region(Some("us-east-1")),
            Ok("us-east-1".to_owned())
        );
        assert_eq!(
            require_region(Some("eu-south-1")),
            Ok("eu-south-1".to_owned())
        );
    }

    #[test]
    fn a_missing_or_blank_region_is_refused() {
        assert_eq!(require_region(None), Err(NoRegion));
        assert_eq!(require_region(Some("")), Err(NoRegion));
        assert_eq!(require_region(Some("  ")), Err(NoRegion));
    }

    #[test]
    fn the_refusal_is_one_line_naming_both_ways_to_set_a_region() {
        let m = NoRegion.to_string();
        assert!(!m.contains('\n'), "{m}");
        assert!(
            m.contains("AWS_REGION") && m.contains("aws configure set region"),
            "{m}"
        );
    }
}
