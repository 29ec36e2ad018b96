//! The engine against Jinja2-in-Ansible's behaviour, one construct at a time.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use minijinja::Value;
use wisp_plan::scope::{HostScope, Layer};
use wisp_plan::{Data, Engine};

fn frame(vars: &str) -> (Arc<Engine>, Value) {
    let engine = Arc::new(Engine::new(Default::default()));
    let vars = match Data::parse_yaml(vars).unwrap() {
        Data::Map(m) => m,
        Data::Null => wisp_plan::DataMap::new(),
        other => panic!("{other:?}"),
    };
    let scope = HostScope::new(
        Arc::clone(&engine),
        vec![Arc::new(Layer::new(&vars))],
        Arc::new(Layer::default()),
        Default::default(),
    );
    let f = scope.frame(Arc::new(Layer::default()), Arc::new(Layer::default()));
    (engine, f)
}

fn render(vars: &str, template: &str) -> String {
    let (engine, f) = frame(vars);
    engine
        .render(template, &f)
        .unwrap_or_else(|e| format!("ERROR: {e}"))
}

#[test]
fn python_prints_booleans_none_and_lists() {
    // A none alone writes nothing, as Ansible's templar does; in a list it is `None`.
    let vars = "t: true\nn: ~\nl: [a, 1, true]\nm: {k: v}\nf: 1.0\n";
    assert_eq!(
        render(vars, "{{ t }} {{ n }} {{ l }} {{ m }} {{ f }}"),
        "True  ['a', 1, True] {'k': 'v'} 1.0"
    );
}

#[test]
fn whitespace_is_controlled_as_ansible_sets_it() {
    let t = "{% for x in l %}\n{{ x }}\n{% endfor %}\nend\n";
    assert_eq!(render("l: [1, 2]", t), "1\n2\nend\n");
    assert_eq!(
        render("l: [1, 2]", "{%- for x in l -%} {{ x }} {%- endfor %}"),
        "12"
    );
}

#[test]
fn undefined_is_an_error_that_names_the_var() {
    let out = render("a: 1", "{{ a }} {{ nope }}");
    assert!(out.contains("nope is undefined"), "{out}");
    assert_eq!(
        render("a: 1", "{{ nope | default('d') }} {{ nope is defined }}"),
        "d False"
    );
}

#[test]
fn vars_use_vars_and_cycles_are_refused() {
    assert_eq!(
        render("base: /srv\nconf: '{{ base }}/app.conf'", "{{ conf }}"),
        "/srv/app.conf"
    );
    let out = render("a: '{{ b }}'\nb: '{{ a }}'", "{{ a }}");
    assert!(out.contains("cycle"), "{out}");
}

#[test]
fn one_expression_keeps_its_type() {
    let (engine, f) = frame("ports: [80, 443]");
    let d = engine.data(&Data::Str("{{ ports }}".into()), &f).unwrap();
    assert_eq!(d, Data::List(vec![Data::Int(80), Data::Int(443)]));
    let d = engine
        .data(&Data::Str("x{{ ports[0] }}".into()), &f)
        .unwrap();
    assert_eq!(d, Data::Str("x80".into()));
}

#[test]
fn conditions_must_be_booleans() {
    let (engine, f) = frame("os: debian\nflag: 'yes'");
    assert_eq!(
        engine.condition("os == 'rhel' or os == 'debian'", &f),
        Ok(true)
    );
    assert_eq!(
        engine.condition("os != 'debian' and os != 'ubuntu'", &f),
        Ok(false)
    );
    assert_eq!(engine.condition("flag | bool", &f), Ok(true));
    let e = engine.condition("flag", &f).unwrap_err();
    assert!(e.contains("not a boolean"), "{e}");
}

#[test]
fn filters_mean_what_they_mean_in_ansible() {
    let vars = "a: {x: 1, n: {p: 1}}\nb: {y: 2, n: {q: 2}}\nl: [3, 1, 3]\ns: 'Hello World'\n";
    let cases = [
        ("{{ a | combine(b) }}", "{'x': 1, 'n': {'q': 2}, 'y': 2}"),
        (
            "{{ a | combine(b, recursive=True) }}",
            "{'x': 1, 'n': {'p': 1, 'q': 2}, 'y': 2}",
        ),
        ("{{ l | unique | list }}", "[3, 1]"),
        (
            "{{ l | union([4]) }} {{ l | difference([1]) }} {{ l | intersect([1, 9]) }}",
            "[3, 1, 4] [3] [1]",
        ),
        (
            "{{ s | regex_replace('(\\\\w+) (\\\\w+)', '\\\\2 \\\\1') }}",
            "World Hello",
        ),
        ("{{ s | regex_search('W(or)ld', '\\\\1') }}", "['or']"),
        (
            "{{ '/etc/nginx/nginx.conf' | basename }} {{ '/etc/nginx/nginx.conf' | dirname }}",
            "nginx.conf /etc/nginx",
        ),
        (
            "{{ 'abc' | b64encode }} {{ 'YWJj' | b64decode }}",
            "YWJj abc",
        ),
        (
            "{{ 'abc' | hash('sha1') }}",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            "{{ 'yes' | bool }} {{ 'off' | bool }} {{ '8080' | int + 1 }} {{ 'x' | int }}",
            "True False 8081 0",
        ),
        ("{{ true | ternary('on', 'off') }}", "on"),
        (
            "{{ a | dict2items | items2dict }}",
            "{'x': 1, 'n': {'p': 1}}",
        ),
        ("{{ a | to_json }}", "{\"x\": 1, \"n\": {\"p\": 1}}"),
        ("{{ [1, [2, [3]]] | flatten }}", "[1, 2, 3]"),
        (
            "{{ '1.10' is version('1.9', '>') }} {{ '2.0' is version('2.0.0', 'eq') }}",
            "True True",
        ),
        ("{{ \"it's\" | quote }}", "'it'\"'\"'s'"),
        ("{{ [true, none] | join(',') }}", "True,None"),
        ("{{ ' ssl' if false }}|{{ ' ssl' if a.x == 1 }}", "| ssl"),
        ("{{ 'a\\nb\\n' | indent(2, first=True) }}", "  a\n  b\n"),
    ];
    for (t, want) in cases {
        assert_eq!(render(vars, t), want, "{t}");
    }
}

#[test]
fn yaml_and_json_are_written_as_python_writes_them() {
    let vars = "d: {name: web, ports: [80, 443], opts: {a: 'yes', b: ''}}\n";
    assert_eq!(
        render(vars, "{{ d | to_nice_yaml }}"),
        "name: web\nopts:\n    a: 'yes'\n    b: ''\nports:\n- 80\n- 443\n"
    );
    // Each expected text is what ansible-core's filter wrote for the same data.
    let nested = "d: [{name: a, l: [1, [2, 3]]}, x]";
    assert_eq!(
        render(nested, "{{ d | to_nice_yaml }}"),
        "-   l:\n    - 1\n    -   - 2\n        - 3\n    name: a\n- x\n"
    );
    let texts =
        "d: {s: 'a: b', t: \"line1\\nline2\", u: '-x', v: '1.5', w: 'a,b', k: 'é', e: [], f: {}}";
    assert_eq!(
        render(texts, "{{ d | to_nice_yaml }}"),
        "e: []\nf: {}\nk: é\ns: 'a: b'\nt: 'line1\n\n    line2'\nu: -x\nv: '1.5'\nw: a,b\n"
    );
    assert_eq!(render("", "{{ 'foo' | to_yaml }}"), "foo\n");
    let long = format!("d: {{long: '{}'}}", "word ".repeat(30));
    assert_eq!(
        render(&long, "{{ d | to_nice_yaml }}"),
        format!(
            "long: '{}\n    {}'\n",
            ["word"; 15].join(" "),
            "word ".repeat(15)
        )
    );
    assert_eq!(
        render(vars, "{{ d | to_nice_json }}"),
        "{\n    \"name\": \"web\",\n    \"opts\": {\n        \"a\": \"yes\",\n        \"b\": \"\"\n    },\n    \"ports\": [\n        80,\n        443\n    ]\n}"
    );
    assert_eq!(
        render(vars, "{{ d | to_yaml }}"),
        "name: web\nopts: {a: 'yes', b: ''}\nports: [80, 443]\n"
    );
    assert_eq!(
        render("", "{{ '{a: [1, 2]}' | from_yaml }}"),
        "{'a': [1, 2]}"
    );
}

#[test]
fn hostile_templates_stop() {
    let cases = [
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% for a in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    ];
    for t in cases {
        let out = render("", t);
        assert!(
            out.starts_with("ERROR"),
            "{t}: {}",
            &out[..out.len().min(100)]
        );
    }
}

#[test]
fn literal_braces_are_written_with_raw() {
    assert_eq!(
        render("", "docker ps --format '{% raw %}{{.Names}}{% endraw %}'"),
        "docker ps --format '{{.Names}}'"
    );
    let out = render("", "docker ps --format '{{.Names}}'");
    assert!(out.starts_with("ERROR: syntax error"), "{out}");
}
