use super::*;

fn parser(format: &str) -> Parser {
    let settings = ParseSettings {
        format: format.into(),
        ..Default::default()
    };
    let config = ParserConfig::new(settings).unwrap();
    Parser::new(&config, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).unwrap()
}

#[test]
fn parses_and_templates_a_batch() {
    let p = parser("generator");
    let lines = [
        "2026-11-20T10:00:00.000Z INFO checkout: request started req=r1 path=/cart user=u12",
        "2026-11-20T10:00:00.100Z INFO checkout: request started req=r2 path=/cart user=u99",
        "garbage",
        "2026-11-20T10:00:01.000Z WARNING payments: charge retry attempt=2",
    ];
    let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(*l)).collect();
    let batch = p.parse_batch(&input);
    let (out, templates) = (&batch.parsed, &batch.templates);
    let Parsed::Event(a) = &out[0] else {
        panic!("{:?}", out[0])
    };
    let Parsed::Event(b) = &out[1] else { panic!() };
    assert_eq!(a.template, b.template);
    assert_eq!(
        templates[a.template].1,
        "request started req=<*> path=/cart user=<*>"
    );
    assert_eq!(batch.params(a), r#"["r1","u12"]"#);
    assert_eq!(a.header.service, "checkout");
    assert!(matches!(&out[2], Parsed::Quarantined(r) if r.contains("does not match")));
    let Parsed::Event(c) = &out[3] else { panic!() };
    assert_eq!(
        (c.header.level, c.header.level_raw.as_ref()),
        ("WARN", "WARNING")
    );
}

#[test]
fn session_key_may_name_a_parsed_field() {
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let with_key = |format: &str, key: &str| {
        ParserConfig::new(ParseSettings {
            format: format.into(),
            session_key: key.into(),
            ..Default::default()
        })
        .and_then(|config| Parser::new(&config, date))
    };
    let session = |p: &Parser, line: &str| {
        let mut ts = TimestampParser::new(p.time);
        let h = p.parse_header(line, &mut ts).unwrap();
        h.session.map(|s| s.into_owned())
    };
    // A format string's field.
    let p = with_key(
        "<Date> <Time> <Pid> <Level> <Component>: <Content>",
        "field:Pid",
    )
    .unwrap();
    assert_eq!(
        session(&p, "081109 203615 148 INFO dfs.DataNode: Receiving block").as_deref(),
        Some("148")
    );
    // A nested JSON key and a logfmt key; a line without it is in no session.
    let p = with_key("json", "field:trace.id").unwrap();
    let json = r#"{"ts":"2026-11-20T10:00:00Z","level":"info","message":"db query","trace":{"id":"t-42"}}"#;
    assert_eq!(session(&p, json).as_deref(), Some("t-42"));
    let bare = r#"{"ts":"2026-11-20T10:00:00Z","level":"info","message":"tick"}"#;
    assert_eq!(session(&p, bare), None);
    let p = with_key("logfmt", "field:trace_id").unwrap();
    let logfmt = "ts=2026-11-20T10:00:00Z level=info msg=\"db query\" trace_id=t-7";
    assert_eq!(session(&p, logfmt).as_deref(), Some("t-7"));
    // A regex key leaves the header's session empty (03-gold reads it from the message).
    let p = with_key("json", "req=(\\S+)").unwrap();
    assert_eq!(session(&p, json), None);
    // A field the format does not have is a configuration error that names the fields.
    let err = with_key("<Date> <Time> <Level>: <Content>", "field:Pid")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no <Pid> field") && err.contains("Date, Time, Level, Content"),
        "{err}"
    );
}

#[test]
fn same_templates_whatever_the_thread_count() {
    let p = parser("generator");
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            format!(
                "2026-11-20T10:00:00.000Z INFO svc{}: step {} done in {} ms",
                i % 3,
                i % 7,
                i
            )
        })
        .collect();
    let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| p.parse_batch(&input));
    let many = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap()
        .install(|| p.parse_batch(&input));
    assert_eq!(one, many);
}

/// One realistic line per preset (real public samples' shapes), with the service, level,
/// time and message each preset must read from it.
const PRESET_LINES: &[(&str, &str, &str, &str, &str, &str)] = &[
    // (preset, line, service, level, UTC time, message)
    (
        "generator",
        "2026-11-20T10:00:00.000Z INFO checkout: request started req=r1",
        "checkout",
        "INFO",
        "2026-11-20T10:00:00Z",
        "request started req=r1",
    ),
    (
        "hdfs",
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
        "dfs.DataNode$PacketResponder",
        "INFO",
        "2008-11-09T20:36:15Z",
        "PacketResponder 1 for block blk_38865049064139660 terminating",
    ),
    (
        "hadoop",
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        "org.apache.hadoop.mapreduce.v2.app.MRAppMaster",
        "INFO",
        "2015-10-18T18:01:47.978Z",
        "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
    ),
    (
        "spark",
        "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM, HUP, INT]",
        "executor.CoarseGrainedExecutorBackend",
        "INFO",
        "2017-06-09T20:10:40Z",
        "Registered signal handlers for [TERM, HUP, INT]",
    ),
    (
        "zookeeper",
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
        "0:0:0:0:0:0:0:2181:FastLeaderElection",
        "INFO",
        "2015-07-29T17:41:44.747Z",
        "Notification time out: 3200",
    ),
    (
        "bgl",
        "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
        "KERNEL",
        "INFO",
        "2005-06-03T22:42:50Z",
        "instruction cache parity error corrected",
    ),
    (
        "hpc",
        "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component \"alt0\" is in the unavailable state (HWID=1980)",
        "unix.hw",
        "INFO",
        "2004-02-26T14:12:22Z",
        "Component State Change: Component \"alt0\" is in the unavailable state (HWID=1980)",
    ),
    (
        "thunderbird",
        "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
        "crond(pam_unix)",
        "INFO",
        "2005-11-09T20:01:01Z",
        "session closed for user root",
    ),
    (
        "syslog",
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
        "sshd(pam_unix)",
        "INFO",
        "2026-06-14T15:16:01Z",
        "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
    ),
    (
        "syslog",
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "su",
        "FATAL",
        "2026-10-11T22:14:15Z",
        "'su root' failed for lonvick on /dev/pts/8",
    ),
    (
        "rfc5424",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"] An application event log entry",
        "evntslog",
        "NOTICE",
        "2003-10-11T22:14:15.003Z",
        "[exampleSDID@32473 iut=\"3\"] An application event log entry",
    ),
    (
        "openssh",
        "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "sshd",
        "INFO",
        "2025-12-10T06:55:46Z",
        "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
    ),
    (
        "apache-error",
        "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
        "-",
        "ERROR",
        "2005-12-04T04:47:44Z",
        "mod_jk child workerEnv in error state 6",
    ),
    (
        "access-log",
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 503 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"",
        "-",
        "ERROR",
        "2000-10-10T20:55:36Z",
        "GET /apache_pb.gif HTTP/1.0",
    ),
    (
        "android",
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992 ActivityRecord{de9231d u0 com.tencent.qt.qtl/.activity.info.NewsDetailXmlActivity t761}}}, allDrawn= false",
        "WindowManager",
        "DEBUG",
        "2026-03-17T16:13:38.811Z",
        "printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992 ActivityRecord{de9231d u0 com.tencent.qt.qtl/.activity.info.NewsDetailXmlActivity t761}}}, allDrawn= false",
    ),
    (
        "windows-cbs",
        "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
        "CBS",
        "INFO",
        "2016-09-28T04:30:30Z",
        "Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
    ),
    (
        "healthapp",
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
        "Step_LSC",
        "INFO",
        "2017-12-23T22:15:29.606Z",
        "onStandStepChanged 3579",
    ),
    (
        "mac",
        "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0",
        "kernel",
        "INFO",
        "2026-07-01T09:00:55Z",
        "IOThunderboltSwitch<0>(0x0)::listenerCallback - Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0",
    ),
    (
        "openstack",
        "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 54fadb412c4e40cdbaed9335e4c35a9e - - -] 10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
        "nova.osapi_compute.wsgi.server",
        "INFO",
        "2017-05-16T00:00:00.008Z",
        "10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
    ),
    (
        "proxifier",
        "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
        "chrome.exe",
        "INFO",
        "2026-10-30T16:49:06Z",
        "proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
    ),
    (
        "json",
        r#"{"time":"2026-11-20T10:00:00+01:00","level":"error","logger":"db","msg":"connection lost to 10.0.0.7"}"#,
        "db",
        "ERROR",
        "2026-11-20T09:00:00Z",
        "connection lost to 10.0.0.7",
    ),
    (
        "logfmt",
        r#"ts=1763632800 level=warn service=api msg="slow request" duration=1.2s"#,
        "api",
        "WARN",
        "2025-11-20T10:00:00Z",
        "slow request",
    ),
    (
        "syslog-iso",
        "2025-06-24T14:36:25.123456+02:00 web1 sshd[812]: Accepted publickey for root from 10.0.0.5 port 50522 ssh2",
        "sshd",
        "INFO",
        "2025-06-24T12:36:25.123Z",
        "Accepted publickey for root from 10.0.0.5 port 50522 ssh2",
    ),
    (
        "cri",
        "2025-06-24T14:36:25.123456789Z stderr F level=warn msg=\"disk 91% full\"",
        "-",
        "INFO",
        "2025-06-24T14:36:25.123Z",
        "level=warn msg=\"disk 91% full\"",
    ),
    (
        "journald",
        r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1750775785123456","__MONOTONIC_TIMESTAMP":"12","_HOSTNAME":"web1","PRIORITY":"3","SYSLOG_IDENTIFIER":"sshd","_PID":"812","MESSAGE":"error: kex_exchange_identification: Connection closed by remote host"}"#,
        "sshd",
        "ERROR",
        "2025-06-24T14:36:25.123Z",
        "error: kex_exchange_identification: Connection closed by remote host",
    ),
    (
        "docker",
        r#"{"log":"GET /healthz 200 1.2ms\n","stream":"stdout","attrs":{"tag":"api"},"time":"2025-06-24T14:36:25.123456789Z"}"#,
        "api",
        "INFO",
        "2025-06-24T14:36:25.123Z",
        "GET /healthz 200 1.2ms",
    ),
];

#[test]
fn every_preset_reads_its_log() {
    for &(preset, line, service, level, time, message) in PRESET_LINES {
        let p = parser(preset);
        let mut ts = TimestampParser::new(p.time);
        let h = p
            .parse_header(line, &mut ts)
            .unwrap_or_else(|e| panic!("{preset}: {e}\n{line}"));
        assert_eq!(h.service, service, "{preset} service");
        assert_eq!(h.level, level, "{preset} level");
        assert_eq!(h.message, message, "{preset} message");
        let expected = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap()
            .timestamp_millis();
        assert_eq!(h.ts_ms, expected, "{preset} time");
    }
}

#[test]
fn loghub_format_strings_that_repeat_the_time_read_the_full_time() {
    // loghub's own format strings for BGL and Thunderbird name an epoch, a date and a
    // time; joined they are no timestamp, and the fullest reading with a year is kept.
    let cases = [
        (
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
            "2005-06-03T15:42:50.675Z",
            "instruction cache parity error corrected",
        ),
        (
            "<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\\[<PID>\\])?: <Content>",
            "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
            "2005-11-09T12:01:01Z",
            "session closed for user root",
        ),
    ];
    for (format, line, time, message) in cases {
        let p = parser(format);
        let mut ts = TimestampParser::new(p.time);
        let expected = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap()
            .timestamp_millis();
        // The second line reads through the subset the first one found.
        for _ in 0..2 {
            let h = p
                .parse_header(line, &mut ts)
                .unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(h.ts_ms, expected, "{format}");
            assert_eq!(h.message, message);
        }
    }
}

#[test]
fn auto_detection_picks_the_preset_of_each_sample() {
    let settings = ParseSettings::default();
    assert_eq!(settings.format, "auto");
    let config = ParserConfig::new(settings).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    for &(preset, line, ..) in PRESET_LINES {
        let sample = vec![line; 5];
        let (_, detection) = Parser::for_sample(&config, date, &sample).unwrap();
        let d = detection.expect("auto detects");
        assert_eq!(d.matched, 5, "{preset}");
        // Presets with the same shape (syslog / mac / openssh) read each other's lines
        // equally well; the detected one must read the line to the same message.
        let chosen = parser(&d.preset);
        let own = parser(preset);
        let mut ts = TimestampParser::new(chosen.time);
        assert_eq!(
            chosen.parse_header(line, &mut ts).unwrap().message,
            own.parse_header(line, &mut ts).unwrap().message,
            "{preset} detected as {}",
            d.preset
        );
    }
    let err = Parser::for_sample(&config, date, &["no format at all"])
        .err()
        .unwrap();
    assert!(err.to_string().contains("no preset reads"), "{err}");
}

#[test]
fn continuation_lines_join_the_event_before_them() {
    let p = parser("generator");
    let lines = [
        "java.lang.IllegalStateException: orphan frame",
        "2026-11-20T10:00:00.000Z ERROR api: request failed req=1",
        "java.lang.NullPointerException: boom",
        "\tat com.example.Api.handle(Api.java:42)",
        "Caused by: java.io.IOException: closed",
        "2026-11-20T10:00:01.000Z INFO api: request ok req=2",
        "garbage that is no continuation",
    ];
    let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(*l)).collect();
    let out = p.parse_batch(&input).parsed;
    assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("no event before it")));
    let Parsed::Event(e) = &out[1] else {
        panic!("{:?}", out[1])
    };
    assert_eq!(e.lines, 4);
    assert_eq!(
        e.header.message,
        "request failed req=1\njava.lang.NullPointerException: boom\n\tat com.example.Api.handle(Api.java:42)\nCaused by: java.io.IOException: closed"
    );
    assert!(out[2..5].iter().all(|p| *p == Parsed::Joined));
    assert!(matches!(&out[5], Parsed::Event(e) if e.lines == 1));
    assert!(matches!(&out[6], Parsed::Quarantined(r) if r.contains("does not match")));
}

#[test]
fn bad_timestamps_are_quarantined_with_the_reason() {
    let p = parser("hdfs");
    let out = p
        .parse_batch(&[
            Ok("0811xx 203615 148 INFO dfs.DataNode: hello"),
            Err("invalid UTF-8".into()),
        ])
        .parsed;
    assert!(matches!(&out[0], Parsed::Quarantined(r) if r.contains("unparseable timestamp")));
    assert_eq!(out[1], Parsed::Quarantined("invalid UTF-8".into()));
}

#[test]
fn split_container_lines_join_back_without_a_newline() {
    let p = parser("cri");
    let line = |i: usize, tag: &str, text: &str| {
        format!(
            "2025-06-24T14:36:{:02}.000000001Z stdout {tag} {text}",
            i % 60
        )
    };
    let mut lines: Vec<String> = (0..CHUNK + 10)
        .map(|i| line(i, "F", &format!("request {i} served")))
        .collect();
    // A line split in three, and one split across the boundary of two staging chunks.
    lines[3] = line(3, "P", "{\"big\":\"aaa");
    lines[4] = line(4, "P", "bbb");
    lines[5] = line(5, "F", "ccc\"}");
    lines[CHUNK - 1] = line(CHUNK - 1, "P", "first half,");
    lines[CHUNK] = line(CHUNK, "F", "second half");
    let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
    let out = p.parse_batch(&input).parsed;
    let Parsed::Event(e) = &out[3] else {
        panic!("{:?}", out[3])
    };
    assert_eq!(e.header.message, "{\"big\":\"aaabbbccc\"}");
    assert_eq!(e.lines, 3);
    assert!(out[4..6].iter().all(|p| *p == Parsed::Joined));
    let Parsed::Event(e) = &out[CHUNK - 1] else {
        panic!("{:?}", out[CHUNK - 1])
    };
    assert_eq!(e.header.message, "first half,second half");
    assert_eq!(out[CHUNK], Parsed::Joined);
    assert!(matches!(&out[CHUNK + 1], Parsed::Event(e) if e.lines == 1));
    let events = out.iter().filter(|p| matches!(p, Parsed::Event(_))).count();
    assert_eq!(events, CHUNK + 10 - 3);
}

/// Systems the parser was not developed on, each a line of its kind under the format string
/// loghub publishes for it: every one must read (a line logparser's regex reads is never
/// quarantined for its header). Windows pads its columns with runs of spaces; Proxifier's
/// program names hold spaces; HPC's time is an epoch; OpenStack's first field a file name.
#[test]
fn loghub_formats_of_other_systems_read_their_lines() {
    let cases = [
        (
            "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
            "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992}}, allDrawn= false",
        ),
        (
            "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
            "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component \\042alt0\\042 is in the unavailable state (HWID=1902)",
        ),
        (
            "<Date> <Time>, <Level>                  <Component>    <Content>",
            "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
        ),
        (
            "<Logrecord> <Date> <Time> <Pid> <Level> <Component> \\[<ADDR>\\] <Content>",
            "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da - - -] 10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829",
        ),
        (
            "<Date> <Time> <Level> \\[<Process>\\] <Component>: <Content>",
            "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application appattempt_1445144423722_0020_000001",
        ),
        (
            "\\[<Time>\\] <Program> - <Content>",
            "[10.30 16:49:06] chrome.exe *64 - proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS",
        ),
        (
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
        ),
    ];
    for (format, line) in cases {
        let p = parser(format);
        let mut ts = TimestampParser::new(p.time);
        let h = p
            .parse_header(line, &mut ts)
            .unwrap_or_else(|e| panic!("{format}: {e}\n{line}"));
        assert!(!h.message.is_empty(), "{format}");
    }
}

/// A log whose time is in a shape no reader knows still parses — its lines are events at the
/// start of the batch date, templated as usual — while in a log whose times read, a line with
/// an unreadable time is quarantined as before.
#[test]
fn a_time_shape_nobody_reads_keeps_the_lines() {
    let settings = ParserConfig::new(ParseSettings {
        format: "<Time> <Level> <Component>: <Content>".into(),
        ..Default::default()
    })
    .unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let lines: Vec<String> = (0..50)
        .map(|i| format!("{}h{:02}m INFO api: request {i} served", i % 24, i % 60))
        .collect();
    let sample: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (parser, _) = Parser::for_sample(&settings, date, &sample).unwrap();
    let input: Vec<Result<&str, String>> = sample.iter().map(|l| Ok(*l)).collect();
    let batch = parser.parse_batch(&input);
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    assert!(batch.parsed.iter().all(
        |p| matches!(p, Parsed::Event(e) if e.header.ts_ms == midnight && e.header.service == "api")
    ));
    assert_eq!(batch.templates.len(), 1);

    let mut good: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "2026-11-20T10:00:{:02}Z INFO api: request {i} served",
                i % 60
            )
        })
        .collect();
    good[7] = "2026-11-20T99:99:99Z INFO api: request 7 served".into();
    let sample: Vec<&str> = good.iter().map(String::as_str).collect();
    let (parser, _) = Parser::for_sample(&settings, date, &sample).unwrap();
    let input: Vec<Result<&str, String>> = sample.iter().map(|l| Ok(*l)).collect();
    let out = parser.parse_batch(&input).parsed;
    assert!(matches!(&out[7], Parsed::Quarantined(r) if r.contains("unparseable timestamp")));
}
