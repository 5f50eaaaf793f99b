//! What parsing a hello body holds, counted by the allocator: a body of a
//! million unknown keys must cost no more than one of none. Its own test
//! binary, so that no other test allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most held at once during `f`, beyond what was held before it.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - before)
}

/// Issue 31's key bomb: a 6 MB object of short unique keys, which read into
/// a map of every member took about 20 bytes a byte of body (the `hello`
/// process peaked at 104 MB, and two at once were OOM-killed in 128 MiB).
#[test]
fn a_body_of_unknown_keys_costs_no_more_than_its_own_bytes() {
    let mut body = String::from("{");
    for i in 0..700_000 {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    // An escaped key is still `n`, and of a key given twice the last counts.
    body.push_str("\"n\": 12, \"\\u006e\": 15}");
    assert!(body.len() > 6_000_000, "{} bytes", body.len());
    let (parsed, peak) = peak_during(|| shared::validate::hello_request(body.as_bytes()));
    assert_eq!(parsed.expect("a valid body").n, Some(15));
    assert!(peak < 64 * 1024, "parsing held {peak} bytes beyond the body");
}
