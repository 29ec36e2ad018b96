//! Hostile inputs on the operator's side: inventories and plans built to exhaust the
//! controller are refused, or cost what their size does.

use super::*;

/// `wisp run -i INVENTORY all -- true` in `tmp` with at most 2 GiB of address space, so a
/// parser that blows up fails here instead of taking the machine.
fn run_with_inventory(tmp: &ScratchDir, inventory: &Path) -> (Output, String) {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "-i"])
        .arg(inventory)
        .args(["all", "--", "true"]);
    // SAFETY: setrlimit between fork and exec, with a live local.
    #[allow(unsafe_code)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            let lim = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Case: an inventory built to exhaust the controller — a YAML alias bomb (nine levels of nine
/// aliases: 387 million nodes from 1 KiB) and a file far larger than any inventory — is
/// refused with exit 4 and a message naming the file, before it costs memory.
#[test]
fn a_hostile_inventory_is_refused_before_it_costs_memory() {
    let tmp = ScratchDir::new("attack-inventory");
    let mut bomb = String::from(
        "x: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let aliases = vec![format!("*{}", pair[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
    }
    bomb.push_str("all:\n  hosts:\n    web01:\n");
    let path = tmp.0.join("bomb.yml");
    std::fs::write(&path, bomb).unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &path);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("bomb.yml") && stderr.contains("alias"),
        "{stderr}"
    );

    let huge = tmp.0.join("huge.ini");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(1 << 30).unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &huge);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("huge.ini") && stderr.contains("larger"),
        "{stderr}"
    );
}

/// Case: INI inventories built to cost the controller: 2,000 lines of `xN-[0:10000]` (30 KB,
/// 20 million hosts; it used to reach 3.3 GB and abort) and a `children` graph shaped as 40 stacked diamonds (each level's two
/// groups both children of the level above: 2^40 paths through 80 groups). The first is
/// refused with exit 4 and the reason; the second parses and runs, its groups resolved once
/// each. Both within the 2 GiB address space `run_with_inventory` allows.
#[test]
fn hostile_ini_ranges_and_diamonds_cost_what_their_size_does() {
    let tmp = ScratchDir::new("attack-ini");
    let ranges = tmp.0.join("ranges.ini");
    let lines: String = (0..2000).map(|i| format!("x{i}-[0:10000]\n")).collect();
    std::fs::write(&ranges, lines).unwrap();
    let started = std::time::Instant::now();
    let (out, stderr) = run_with_inventory(&tmp, &ranges);
    println!("ranges: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("ranges.ini") && stderr.contains("more than 100000 hosts"),
        "{stderr}"
    );

    let mut diamond = String::new();
    for level in 0..40 {
        for side in ["a", "b"] {
            diamond.push_str(&format!(
                "[g{level}{side}:children]\ng{next}a\ng{next}b\n",
                next = level + 1
            ));
        }
    }
    diamond.push_str("[g40a]\nlocalhost\n[g40b]\nlocalhost\n[g0a:vars]\ndepth=top\n");
    let path = tmp.0.join("diamond.ini");
    std::fs::write(&path, diamond).unwrap();
    let started = std::time::Instant::now();
    let (out, stderr) = run_with_inventory(&tmp, &path);
    println!("diamond: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // A cycle in such a graph is still found, and named.
    let cyclic = tmp.0.join("cyclic.ini");
    std::fs::write(
        &cyclic,
        std::fs::read_to_string(&path).unwrap() + "[g40a:children]\ng3b\n",
    )
    .unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &cyclic);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is its own descendant"), "{stderr}");
}

/// Case: plan conditions and templates built to exhaust the controller: `when` with 300,000
/// `not`s (the parser recurses once per `not`), a 1 MB var used 2,000 times in one template
/// (2 GB per host), loops nested to run 10^15 times, and a macro that calls itself. Each is
/// refused with exit 4 and the plan's file and line, before any host is contacted, within
/// bounded time and memory. So are templates that write little and hold much: a string, a
/// list or a joined text doubled forty times in a loop, and a macro quadrupling its argument on
/// each call.
#[test]
fn a_hostile_condition_or_template_is_refused_before_it_costs() {
    let tmp = ScratchDir::new("attack-plan");
    let nots = format!(
        "[vars]\nx = \"1\"\n\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\nwhen = \"{}x\"\n",
        "not ".repeat(300_000)
    );
    std::fs::write(tmp.0.join("nots.toml"), nots).unwrap();
    let big = format!(
        "[vars]\nbig = \"{}\"\n\n[[task]]\nop = \"file.write\"\npath = \"{}/out\"\ncontent = \"{}\"\n",
        "x".repeat(1 << 20),
        tmp.0.display(),
        "{{ big }}".repeat(2000)
    );
    std::fs::write(tmp.0.join("big.toml"), big).unwrap();
    let endless = "[vars]\nn = 100000\n\n[[task]]\nop = \"file.write\"\npath = \"/tmp/x\"\ncontent = \"\"\"\n{% for a in range(n) %}{% for b in range(n) %}{% for c in range(n) %}{{ c }}{% endfor %}{% endfor %}{% endfor %}\"\"\"\n";
    std::fs::write(tmp.0.join("endless.toml"), endless).unwrap();
    let recursive = "[vars]\nx = 1\n\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\nstdin = \"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(x) }}\"\n";
    std::fs::write(tmp.0.join("recursive.toml"), recursive).unwrap();
    // Held, not written: each of these writes almost nothing and would hold a terabyte.
    let held = [
        (
            "doubled.toml",
            "{% set ns = namespace(s='x' * 1000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        ),
        (
            "listed.toml",
            "{% set ns = namespace(l=[1, 2, 3]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
        ),
        (
            "macro.toml",
            "{% macro f(s, n) %}{% if n %}{{ f(s ~ s ~ s ~ s, n - 1) | length }}{% endif %}{% endmacro %}{{ f('xy', 20) }}",
        ),
        (
            "joined.toml",
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s] | join %}{% endfor %}{{ ns.s | length }}",
        ),
    ];
    for (name, template) in held {
        let plan = format!(
            "[vars]\nx = 1\n\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\nstdin = \"{template}\"\n"
        );
        std::fs::write(tmp.0.join(name), plan).unwrap();
    }
    let held = held.map(|(plan, _)| (plan, "took more than 64 MiB of memory"));
    for (plan, why) in [
        ("nots.toml", "nests deeper than 100 levels"),
        ("big.toml", "renders to more than"),
        ("endless.toml", "rendering ran past"),
        ("recursive.toml", "recursion limit exceeded"),
    ]
    .into_iter()
    .chain(held)
    {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(["apply", plan, "localhost"]).current_dir(&tmp.0);
        let (out, rss, timed_out) = run_measured(&mut c, std::time::Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!timed_out, "{plan}: still running after 60 s");
        println!("{plan}: peak RSS {rss} KiB");
        assert!(rss < 200 * 1024, "{plan}: peak RSS {rss} KiB");
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains(&format!("{plan}:4")), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    assert!(!tmp.0.join("out").exists(), "a host was written to");
}
