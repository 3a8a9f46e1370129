use super::fetch::{is_sha1, piece_of_chunk};
use super::*;

fn cfg() -> ReadConfig {
    ReadConfig {
        part_size: 256 * KIB,
        initial_window: 128 * KIB,
        max_window: MIB,
        max_parallel: 4,
        backlog: 512 * KIB,
        reorder_distance: 512 * KIB,
        random_align: 16 * KIB,
    }
}

/// Feeds reads of `len` at `offsets` and returns the stream after each.
fn follow(offsets: &[u64], len: u64) -> Vec<(bool, bool)> {
    let cfg = cfg();
    let mut s = Stream::new(cfg.initial_window);
    offsets
        .iter()
        .map(|&o| {
            let seek = s.observe(o, o + len, &cfg);
            (seek, s.sequential)
        })
        .collect()
}

#[test]
fn two_reads_in_a_row_make_a_sequential_stream() {
    let seen = follow(&[0, 4096, 8192], 4096);
    assert_eq!(seen, vec![(false, false), (false, true), (false, true)]);
    // Starting anywhere.
    let seen = follow(&[10 * MIB, 10 * MIB + 4096], 4096);
    assert_eq!(seen, vec![(false, false), (false, true)]);
}

#[test]
fn the_kernels_reorderings_stay_in_the_stream() {
    let r = 128 * KIB;
    let seen = follow(&[2 * r, 0, 3 * r, r, 4 * r, 6 * r, 5 * r, 5 * r, 7 * r], r);
    assert!(seen.iter().all(|(seek, _)| !seek), "{seen:?}");
    assert!(seen[2..].iter().all(|(_, seq)| *seq), "{seen:?}");
}

#[test]
fn far_jumps_are_seeks_and_reset_the_window() {
    let cfg = cfg();
    let mut s = Stream::new(cfg.initial_window);
    for o in [0, 4096, 8192] {
        s.observe(o, o + 4096, &cfg);
    }
    s.read_ahead_to(12288, 100 * MIB, cfg.part_size, 64 * KIB, cfg.max_window);
    assert!(s.window > cfg.initial_window);
    // Forward past the reorder distance and the read-ahead.
    assert!(s.observe(5 * MIB, 5 * MIB + 4096, &cfg));
    assert!(!s.sequential);
    assert_eq!(s.window, cfg.initial_window);
    // Backward past the backlog.
    s.observe(5 * MIB + 4096, 5 * MIB + 8192, &cfg);
    assert!(s.sequential);
    assert!(s.observe(MIB, MIB + 4096, &cfg));
    // A short step back is no seek.
    s.observe(MIB + 4096, MIB + 8192, &cfg);
    assert!(!s.observe(MIB - 100 * KIB, MIB - 96 * KIB, &cfg));
}

#[test]
fn reads_that_skip_ahead_are_not_sequential() {
    // 4 KiB every 256 KiB: forward, close together, but mostly skipping.
    let offsets: Vec<u64> = (0..10).map(|i| i * 256 * KIB).collect();
    let seen = follow(&offsets, 4096);
    assert!(seen.iter().all(|&(seek, seq)| !seek && !seq), "{seen:?}");
}

#[test]
fn the_read_ahead_window_doubles_up_to_its_maximum() {
    let cfg = cfg();
    let size = 100 * MIB;
    let mut s = Stream::new(cfg.initial_window);
    s.observe(0, 64 * KIB, &cfg);
    s.observe(64 * KIB, 128 * KIB, &cfg);
    let mut pos = 128 * KIB;
    let mut targets = Vec::new();
    let mut windows = Vec::new();
    while pos < 8 * MIB {
        if let Some(t) = s.read_ahead_to(pos, size, cfg.part_size, 64 * KIB, cfg.max_window) {
            assert!(t >= pos + windows.last().copied().unwrap_or(0) / 2);
            targets.push(t);
            windows.push(s.window);
        }
        pos += 64 * KIB;
    }
    assert_eq!(&windows[..4], &[256 * KIB, 512 * KIB, MIB, MIB]);
    assert!(targets.windows(2).all(|w| w[0] < w[1]), "{targets:?}");
    // Once the window holds whole parts, read-ahead ends on the part grid.
    assert!(
        targets[3..].iter().all(|t| t % cfg.part_size == 0),
        "{targets:?}"
    );
    // Refills come once a step was read, not at every read: 8 MiB in 64 KiB reads.
    assert!(targets.len() < 40, "{}", targets.len());
    // Never past the end of the file.
    assert_eq!(
        s.read_ahead_to(size - 10, size, cfg.part_size, 64 * KIB, cfg.max_window),
        Some(size)
    );
    assert_eq!(
        s.read_ahead_to(size - 5, size, cfg.part_size, 64 * KIB, cfg.max_window),
        None
    );
}

fn part(end: u64, data: Option<Vec<(u64, &'static [u8])>>) -> Part {
    let (_tx, done) = watch::channel(Outcome::Pending);
    Part {
        end,
        id: 0,
        data: data.map(|pieces| {
            Arc::new(PartData {
                pieces: pieces
                    .into_iter()
                    .map(|(o, d)| (o, Bytes::from_static(d)))
                    .collect(),
                fetched: Vec::new(),
            })
        }),
        done,
        read_ahead: false,
        last_use: 0,
        task: None,
    }
}

fn state(parts: Vec<(u64, Part)>) -> State {
    State {
        parts: parts.into_iter().collect(),
        stream: Stream::new(1),
        next_id: 0,
        tick: 0,
        running: 0,
        queued: BTreeMap::new(),
    }
}

#[test]
fn holes_are_what_no_part_covers() {
    let st = state(vec![
        (10, part(20, None)),
        (20, part(25, None)),
        (40, part(50, None)),
    ]);
    assert_eq!(st.holes(0, 60), vec![(0, 10), (25, 40), (50, 60)]);
    assert_eq!(st.holes(15, 45), vec![(25, 40)]);
    assert_eq!(st.holes(12, 18), vec![]);
    assert_eq!(st.holes(30, 35), vec![(30, 35)]);
    assert_eq!(st.holes(0, 0), vec![]);
}

#[test]
fn bytes_in_memory_are_sliced_across_parts_and_pieces() {
    let st = state(vec![
        (0, part(6, Some(vec![(0, b"abc"), (3, b"def")]))),
        (6, part(9, Some(vec![(6, b"ghi")]))),
        (9, part(12, None)),
    ]);
    let got = st.in_memory(1, 8).unwrap();
    assert_eq!(got.len(), 3, "one slice per piece");
    assert_eq!(join(got), Bytes::from_static(b"bcdefgh"));
    let one = st.in_memory(3, 6).unwrap();
    assert_eq!(one, vec![Bytes::from_static(b"def")]);
    assert!(
        st.in_memory(5, 10).is_none(),
        "the last part is still on its way"
    );
    assert!(st.in_memory(11, 14).is_none(), "nothing past 12");
}

#[test]
fn the_config_is_made_consistent() {
    let odd = ReadConfig {
        part_size: 100 * KIB,
        initial_window: 0,
        max_window: 0,
        max_parallel: 0,
        backlog: 0,
        reorder_distance: 0,
        random_align: 0,
    };
    let fixed = sanitize(odd.clone(), None);
    assert_eq!(fixed.part_size, 100 * KIB);
    assert_eq!(fixed.max_parallel, 1);
    assert!(fixed.initial_window >= 1 && fixed.max_window >= fixed.initial_window);
    let dir = tempfile::tempdir().unwrap();
    let cache = ContentCache::open_with_chunk_size(dir.path(), MIB, 64 * KIB).unwrap();
    // Parts hold whole chunks.
    assert_eq!(sanitize(odd, Some(&cache)).part_size, 128 * KIB);
}

#[test]
fn versions_that_can_be_asked_for() {
    assert!(is_box_id("123456789"));
    assert!(!is_box_id("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    assert!(!is_box_id(""));
    assert!(is_sha1("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    assert!(!is_sha1("123"));
}

#[test]
fn small_slices_of_cached_chunks_are_copied() {
    let chunk = Bytes::from(vec![7u8; 1000]);
    let small = piece_of_chunk(chunk.clone(), 10, 20);
    assert_eq!(small.len(), 10);
    let large = piece_of_chunk(chunk.clone(), 0, 900);
    assert_eq!(
        large.as_ptr(),
        chunk.as_ptr(),
        "a large slice shares the chunk"
    );
}
