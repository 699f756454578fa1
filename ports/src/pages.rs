//! Pages of the public listings: what one bounded read of a list returns and where the next
//! one starts. A page may hold fewer items than asked for when the store's own page filled
//! (DynamoDB's 1 MB), and then still names where to continue: only a page without a
//! continuation is the last.

use traffic_core::IntersectionId;
use traffic_core::city::Intersection;
use traffic_core::query::WindowResult;

/// One page of a window length's results, newest first (see
/// [`crate::ResultStore::results_page`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultPage {
    /// The windows, newest first.
    pub windows: Vec<WindowResult>,
    /// The start (epoch ms) to continue before when older windows exist; `None` on the last
    /// page.
    pub next: Option<i64>,
}

/// A page of [`crate::Registry::intersections_page`] from up to `limit + 1` intersections read
/// in id order: the first `limit`, and the id to continue after when there were more.
pub fn intersections_page_of(
    mut read: Vec<Intersection>,
    limit: usize,
) -> (Vec<Intersection>, Option<IntersectionId>) {
    if read.len() > limit {
        read.truncate(limit);
        let next = read.last().map(|x| x.id.clone());
        (read, next)
    } else {
        (read, None)
    }
}

/// A [`ResultPage`] from up to `limit + 1` windows read newest first: the first `limit`, and
/// the start of the last of them to continue before when there were more.
pub fn result_page_of(mut read: Vec<WindowResult>, limit: usize) -> ResultPage {
    if read.len() > limit {
        read.truncate(limit);
        let next = read.last().map(|w| w.window.start_ms);
        ResultPage {
            windows: read,
            next,
        }
    } else {
        ResultPage {
            windows: read,
            next: None,
        }
    }
}
