//! A bound on the memory one render may take.
//!
//! Fuel bounds how many steps a template runs, and the output cap how much it writes, but
//! neither bounds what it holds: `{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}`
//! runs 120 steps, writes nothing and wants a terabyte. Jinja's operators run inside the
//! template engine, where no filter of ours is called, so the bound sits below it, in the
//! allocator: [`Metered`] counts what each thread allocates and frees while it renders, and a
//! render that grows the thread by more than [`MAX_RENDER_MEMORY`] stops the controller with
//! exit 4 and a message naming the template (and, during the plan's checks, its file and
//! line). The allocation that would cross the bound is never made.
//!
//! Stopping the process, not the render, is forced: an allocator may not unwind, and a
//! failed allocation aborts. The checks of [`crate::Plan::verify`] render every template that
//! does not depend on a host before any host is contacted, so a template hostile on its face
//! stops there, with nothing sent.
//!
//! A binary opts in with `#[global_allocator] static A: wisp_plan::jinja::Metered =
//! wisp_plan::jinja::Metered;`; without it, renders are measured by nobody.

#![allow(unsafe_code)] // the global allocator's contract, and write(2)/_exit(2) from inside it

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// How much one render may grow the thread rendering it: eight times the largest output a
/// template may have ([`super::MAX_RENDERED`]), room for a filter's copies of it.
pub const MAX_RENDER_MEMORY: usize = 64 << 20;

// The message in `stop` names the bound; it cannot format it without allocating.
const _: () = assert!(MAX_RENDER_MEMORY == 64 << 20);

/// The longest label kept for the message: the start of a template, a file and line.
const LABEL: usize = 160;

thread_local! {
    /// Renders running on this thread (a var rendered inside a render nests), and the bytes
    /// it allocated less the bytes it freed since the outermost began: one cell, so that an
    /// allocation outside a render costs one read of it.
    static RENDERING: Cell<(u32, isize)> = const { Cell::new((0, 0)) };
    /// The start of the outermost template being rendered.
    static WHAT: Cell<([u8; LABEL], usize)> = const { Cell::new(([0; LABEL], 0)) };
    /// Where the plan names it, when the caller said (see [`at`]).
    static WHERE: Cell<([u8; LABEL], usize)> = const { Cell::new(([0; LABEL], 0)) };
}

/// The system allocator, counting what each render takes (see the module docs).
#[derive(Debug)]
pub struct Metered;

// SAFETY: every call is passed on to `System` with the same arguments; the counting before it
// reads and writes this thread's cells only, allocates nothing and never unwinds.
unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size() as isize);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grow(new_size as isize - layout.size() as isize);
        // SAFETY: as in `dealloc`, with the caller's new size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn grow(by: isize) {
    let _ = RENDERING.try_with(|cell| {
        let (depth, grown) = cell.get();
        if depth == 0 {
            return;
        }
        let now = grown.saturating_add(by);
        cell.set((depth, now));
        if now > MAX_RENDER_MEMORY as isize {
            stop();
        }
    });
}

/// Says which render took too much, and ends the process (see the module docs).
fn stop() -> ! {
    let what = WHAT.try_with(Cell::get).unwrap_or(([0; LABEL], 0));
    let place = WHERE.try_with(Cell::get).unwrap_or(([0; LABEL], 0));
    let parts: [&[u8]; 6] = [
        b"wisp: ",
        &place.0[..place.1],
        if place.1 > 0 { b": " } else { b"" },
        b"rendering `",
        &what.0[..what.1],
        b"` took more than 64 MiB of memory: stopped (a value doubled in a loop or a \
          recursive macro?)\n",
    ];
    for part in parts {
        // SAFETY: a valid buffer of its own length, written to the standard error.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: ends the process at once, running nothing that could allocate.
    unsafe { libc::_exit(4) }
}

fn label(text: &str) -> ([u8; LABEL], usize) {
    let mut out = [0u8; LABEL];
    let line = text.trim_start().lines().next().unwrap_or("");
    let mut n = line.len().min(LABEL);
    while !line.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&line.as_bytes()[..n]);
    (out, n)
}

/// Runs one render of `source`, measured (nested renders count toward the outermost).
pub(super) fn measured<T>(source: &str, render: impl FnOnce() -> T) -> T {
    let (depth, grown) = RENDERING.get();
    if depth == 0 {
        WHAT.set(label(source));
        RENDERING.set((1, 0));
    } else {
        RENDERING.set((depth + 1, grown));
    }
    let _end = Ended;
    render()
}

/// Undoes [`measured`]'s count, however the render ended.
struct Ended;

impl Drop for Ended {
    fn drop(&mut self) {
        let (depth, grown) = RENDERING.get();
        RENDERING.set((depth.saturating_sub(1), grown));
    }
}

/// Runs `f` (renders, synchronously) with `place` named in the message of a render that
/// takes too much.
pub fn at<T>(place: &str, f: impl FnOnce() -> T) -> T {
    WHERE.set(label(place));
    let out = f();
    WHERE.set(([0; LABEL], 0));
    out
}
