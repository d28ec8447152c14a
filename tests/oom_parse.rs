//! OOM-report parsing against real kernel output (tests/fixtures/oom, see SOURCES.md).
//! Every expected number below was read off the fixture text by hand.

use memlens::kmsg::log::{LogLine, parse_line, parse_log};
use memlens::kmsg::oom::{OomReport, Reaped, Victim, parse_reports};
use proptest::prelude::*;

const KB: u64 = 1024;
const PAGE: u64 = 4096;
// The kernel prints "unlimited" as 9007199254740988 kB; memlens reports it as null (None).

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/oom/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reports(name: &str) -> Vec<OomReport> {
    parse_reports(&parse_log(&fixture(name)))
}

fn stat(r: &OomReport, key: &str) -> Option<u64> {
    r.stat.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

const EL7_CG: &str =
    "/system.slice/docker-15e3eaa960e4ac016d47ea7247961a70254bbbaaaec3981a9090f68606623b50.scope";

#[test]
fn el7_3_10_memcg_back_to_back() {
    let rs = reports("el7-3.10-memcg-back-to-back.log");
    assert_eq!(rs.len(), 2);
    let r = &rs[0];
    assert!(r.complete);
    assert_eq!(r.mono_usec, Some(13_449_623_801));
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(14726), Some("stress"))
    );
    assert_eq!(
        (r.gfp_mask.as_deref(), r.order, r.oom_score_adj),
        (Some("0xd0"), Some(0), Some(0))
    );
    assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert!(!r.global);
    assert_eq!(r.task_memcg.as_deref(), Some(EL7_CG));
    assert_eq!(r.oom_memcg.as_deref(), Some(EL7_CG));
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(53824 * KB), Some(102400 * KB), Some(20427))
    );
    assert_eq!(
        (r.memsw_usage_bytes, r.memsw_limit_bytes),
        (Some(204800 * KB), Some(204800 * KB))
    );
    assert_eq!(
        (r.kmem_usage_bytes, r.kmem_limit_bytes),
        (Some(0), None) // the kernel's unlimited sentinel is null
    );
    assert_eq!((r.swap_usage_bytes, r.swap_limit_bytes), (None, None));
    assert_eq!(r.stat_memcg.as_deref(), Some(EL7_CG));
    assert_eq!(r.stat.len(), 12);
    assert_eq!(r.stat[0], ("cache".to_string(), 64 * KB));
    assert_eq!(stat(r, "rss"), Some(53760 * KB));
    assert_eq!(stat(r, "swap"), Some(150976 * KB));
    assert_eq!(r.stat[11], ("unevictable".to_string(), 0));
    assert_eq!(r.tasks.len(), 10);
    let t = &r.tasks[0];
    assert_eq!(
        (t.pid, t.uid, t.tgid, t.name.as_deref()),
        (Some(14575), Some(0), Some(14575), Some("bash"))
    );
    assert_eq!(
        (t.total_vm_bytes, t.rss_bytes),
        (Some(4556 * PAGE), Some(0))
    );
    assert_eq!(
        (t.pgtables_bytes, t.swap_bytes, t.oom_score_adj),
        (Some(14 * PAGE), Some(119 * PAGE), Some(0))
    );
    assert_eq!(
        (t.rss_anon_bytes, t.rss_file_bytes, t.rss_shmem_bytes),
        (None, None, None)
    );
    let t = &r.tasks[9];
    assert_eq!(
        (t.pid, t.total_vm_bytes, t.rss_bytes),
        (Some(14728), Some(67404 * PAGE), Some(6605 * PAGE))
    );
    assert_eq!(
        (t.pgtables_bytes, t.swap_bytes),
        (Some(83 * PAGE), Some(31751 * PAGE))
    );
    let v = Victim {
        pid: Some(14728),
        comm: Some("stress".into()),
        total_vm_bytes: Some(269616 * KB),
        anon_rss_bytes: Some(24064 * KB),
        file_rss_bytes: Some(4 * KB),
        shmem_rss_bytes: Some(0),
        ..Victim::default()
    };
    assert_eq!(r.victim.as_ref(), Some(&v));
    assert_eq!(r.reaped, None);
    assert_eq!(r.lines.len(), 37);
    assert!(r.lines[0].starts_with("stress invoked oom-killer"));
    assert!(r.lines[36].starts_with("Killed process 14728"));

    let r = &rs[1];
    assert!(
        r.complete,
        "no task table (oom_dump_tasks=0) is still a complete report"
    );
    assert_eq!(r.mono_usec, Some(13_603_131_330));
    assert_eq!(r.trigger.pid, Some(14806));
    assert_eq!((r.usage_bytes, r.failcnt), (Some(101716 * KB), Some(30881)));
    assert_eq!(stat(r, "writeback"), Some(36 * KB));
    assert!(r.tasks.is_empty());
    let v = r.victim.as_ref().expect("victim");
    assert_eq!((v.pid, v.anon_rss_bytes), (Some(14806), Some(55384 * KB)));
}

#[test]
fn el7_3_10_global_sysrq() {
    let rs = reports("el7-3.10-global-sysrq.log");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(r.complete);
    assert!(r.global);
    assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_NONE"));
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(14808), Some("kworker/2:1"))
    );
    assert_eq!(
        (
            r.oom_memcg.as_deref(),
            r.usage_bytes,
            r.stat_memcg.as_deref()
        ),
        (None, None, None)
    );
    assert_eq!(r.tasks.len(), 55);
    let tuned = r.tasks.iter().find(|t| t.pid == Some(1065)).expect("tuned");
    assert_eq!(
        (tuned.total_vm_bytes, tuned.rss_bytes),
        (Some(140581 * PAGE), Some(4162 * PAGE))
    );
    assert_eq!(r.tasks[2].oom_score_adj, Some(-1000));
    let v = r.victim.as_ref().expect("victim");
    assert_eq!((v.pid, v.comm.as_deref()), (Some(1065), Some("tuned")));
    assert_eq!(
        (v.total_vm_bytes, v.anon_rss_bytes, v.file_rss_bytes),
        (Some(562324 * KB), Some(10760 * KB), Some(5888 * KB))
    );
    assert!(
        !r.lines.iter().any(|l| l.contains("SysRq")),
        "the line before the start is not part of it"
    );
}

#[test]
fn ubuntu_4_15_docker() {
    let rs = reports("ubuntu-4.15-docker.log");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(r.complete);
    assert_eq!(r.gfp_mask.as_deref(), Some("0x14000c0(GFP_KERNEL)"));
    assert_eq!((r.order, r.oom_score_adj), (Some(0), Some(0)));
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(27424), Some("java"))
    );
    let cg = "/docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53";
    assert_eq!(
        (r.task_memcg.as_deref(), r.oom_memcg.as_deref()),
        (Some(cg), Some(cg))
    );
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(524288 * KB), Some(524288 * KB), Some(77))
    );
    assert_eq!(
        (r.memsw_usage_bytes, r.kmem_usage_bytes),
        (Some(0), Some(3708 * KB))
    );
    assert_eq!(
        (stat(r, "rss"), stat(r, "rss_huge")),
        (Some(520580 * KB), Some(450560 * KB))
    );
    assert_eq!(r.tasks.len(), 1);
    let t = &r.tasks[0];
    assert_eq!(
        (t.pid, t.total_vm_bytes, t.rss_bytes, t.pgtables_bytes),
        (
            Some(27281),
            Some(1153302 * PAGE),
            Some(134371 * PAGE),
            Some(1466368)
        )
    );
    let v = r.victim.as_ref().expect("victim");
    assert_eq!(
        (
            v.pid,
            v.total_vm_bytes,
            v.anon_rss_bytes,
            v.file_rss_bytes,
            v.shmem_rss_bytes
        ),
        (
            Some(27281),
            Some(4613208 * KB),
            Some(517316 * KB),
            Some(20168 * KB),
            Some(0)
        )
    );
    let reaped = Reaped {
        pid: Some(27281),
        comm: Some("java".into()),
        anon_rss_bytes: Some(0),
        file_rss_bytes: Some(0),
        shmem_rss_bytes: Some(0),
    };
    assert_eq!(r.reaped, Some(reaped));
}

#[test]
fn k8s_kmsg_start_cut() {
    let rs = reports("k8s-v1-start-cut.kmsg");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(
        !r.complete,
        "the invoked line and the victim line are missing"
    );
    assert_eq!(
        (r.seq, r.mono_usec),
        (Some(30_574_067), Some(3_816_544_225_424))
    );
    let pod = "/kubepods.slice/kubepods-pod9eb0e64e_6e1a_43e4_b372_2603a3cc2941.slice";
    assert_eq!(r.oom_memcg.as_deref(), Some(pod));
    assert_eq!(r.task_memcg.as_deref(), Some(format!("{pod}/docker-663f6287c450aea2f849b82a30d1409059497b5de62846a286e55971d61e2650.scope").as_str()));
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(20480 * KB), Some(20480 * KB), Some(136))
    );
    assert_eq!(
        (r.memsw_limit_bytes, r.kmem_usage_bytes),
        (None, Some(0)) // unlimited: null
    );
    assert_eq!(
        r.stat_memcg.as_deref(),
        Some(pod),
        "the first dump is the OOM memcg's"
    );
    assert_eq!(r.stat.len(), 20);
    assert!(r.stat.iter().all(|(_, v)| *v == 0));
    assert_eq!(r.tasks.len(), 2);
    let t = &r.tasks[0];
    assert_eq!(
        (
            t.pid,
            t.uid,
            t.total_vm_bytes,
            t.rss_bytes,
            t.pgtables_bytes,
            t.oom_score_adj,
            t.name.as_deref()
        ),
        (
            Some(2276312),
            Some(65535),
            Some(242 * PAGE),
            Some(PAGE),
            Some(28672),
            Some(-998),
            Some("pause")
        )
    );
    assert_eq!(
        (r.tasks[1].rss_bytes, r.tasks[1].oom_score_adj),
        (Some(5602 * PAGE), Some(-997))
    );
    assert_eq!(r.victim, None);
    assert_eq!(r.reaped.as_ref().and_then(|x| x.pid), Some(2292670));
    assert_eq!(r.trigger.pid, None);
}

#[test]
fn qemu_6_11_global_rss_breakdown() {
    let rs = reports("qemu-6.11-global.log");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(r.complete);
    assert!(r.global);
    assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_NONE"));
    assert_eq!(
        (r.task_memcg.as_deref(), r.oom_memcg.as_deref()),
        (Some("/"), None)
    );
    assert_eq!(
        r.gfp_mask.as_deref(),
        Some("0x440dc0(GFP_KERNEL_ACCOUNT|__GFP_COMP|__GFP_ZERO)")
    );
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref(), r.oom_score_adj),
        (Some(116), Some("stress-ng-vm"), Some(1000))
    );
    assert!(r.stat.is_empty());
    assert_eq!(r.tasks.len(), 4);
    let t = &r.tasks[1];
    assert_eq!(
        (t.pid, t.rss_shmem_bytes, t.oom_score_adj, t.name.as_deref()),
        (Some(114), Some(4128 * PAGE), Some(-1000), Some("stress-ng"))
    );
    let t = &r.tasks[3];
    assert_eq!(
        (t.total_vm_bytes, t.rss_bytes),
        (Some(2628942 * PAGE), Some(1995298 * PAGE))
    );
    assert_eq!(
        (t.rss_anon_bytes, t.rss_file_bytes, t.rss_shmem_bytes),
        (Some(1995157 * PAGE), Some(141 * PAGE), Some(0))
    );
    assert_eq!((t.pgtables_bytes, t.swap_bytes), (Some(16052224), Some(0)));
    let v = Victim {
        pid: Some(116),
        comm: Some("stress-ng-vm".into()),
        total_vm_bytes: Some(10515768 * KB),
        anon_rss_bytes: Some(7980628 * KB),
        file_rss_bytes: Some(564 * KB),
        shmem_rss_bytes: Some(0),
        pgtables_bytes: Some(15676 * KB),
        uid: Some(0),
        oom_score_adj: Some(1000),
    };
    assert_eq!(r.victim.as_ref(), Some(&v));
}

#[test]
fn aks_5_15_v2_syslog_then_cut() {
    let rs = reports("aks-5.15-v2-then-cut.syslog");
    assert_eq!(rs.len(), 2);
    let r = &rs[0];
    assert!(r.complete);
    assert_eq!(
        (r.time.as_deref(), r.mono_usec),
        (None, Some(8_523_347_168))
    );
    assert_eq!(
        r.gfp_mask.as_deref(),
        Some("0x1100cca(GFP_HIGHUSER_MOVABLE)")
    );
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(183960), Some("stress-ng-vm"))
    );
    let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5931aa75_4603_4e65_b552_7c71cf55cfb5.slice";
    assert_eq!(r.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert!(!r.global);
    assert_eq!(r.oom_memcg.as_deref(), Some(pod));
    assert_eq!(r.task_memcg.as_deref(), Some(format!("{pod}/cri-containerd-25a38b5b8d556d7983d975577f5ac75ebbcfb4b269e6deaa0a0440c1ffc969ca.scope").as_str()));
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(102400 * KB), Some(102400 * KB), Some(6402))
    );
    assert_eq!(
        (r.swap_usage_bytes, r.swap_limit_bytes),
        (Some(0), None) // the kernel's unlimited sentinel is null
    );
    assert_eq!((r.memsw_usage_bytes, r.kmem_usage_bytes), (None, None));
    assert_eq!(r.stat_memcg.as_deref(), Some(pod));
    assert_eq!(r.stat.len(), 27);
    assert_eq!(r.stat[0], ("anon".to_string(), 98742272));
    assert_eq!(stat(r, "percpu"), Some(11752));
    assert_eq!(stat(r, "workingset_refault_file"), Some(1190));
    assert_eq!(r.stat[26], ("workingset_restore_anon".to_string(), 0));
    assert_eq!(r.tasks.len(), 9);
    let t = &r.tasks[8];
    assert_eq!(
        (
            t.pid,
            t.total_vm_bytes,
            t.rss_bytes,
            t.pgtables_bytes,
            t.oom_score_adj
        ),
        (
            Some(183960),
            Some(74798 * PAGE),
            Some(23376 * PAGE),
            Some(487424),
            Some(1000)
        )
    );
    let v = Victim {
        pid: Some(183960),
        comm: Some("stress-ng-vm".into()),
        total_vm_bytes: Some(299192 * KB),
        anon_rss_bytes: Some(93176 * KB),
        file_rss_bytes: Some(316 * KB),
        shmem_rss_bytes: Some(12 * KB),
        pgtables_bytes: Some(476 * KB),
        uid: Some(0),
        oom_score_adj: Some(1000),
    };
    assert_eq!(r.victim.as_ref(), Some(&v));
    assert!(
        r.lines
            .iter()
            .all(|l| !l.contains("TaskOOM") && !l.contains("New status")),
        "user-space lines are not report lines"
    );
    assert!(r.lines[0].starts_with("stress-ng-vm invoked"));

    let r = &rs[1];
    assert!(
        !r.complete,
        "only the start of the second report is in the log"
    );
    assert_eq!(r.mono_usec, Some(8_523_444_701));
    assert_eq!(r.victim, None);
    assert_eq!(r.lines.len(), 1);
}

#[test]
fn this_host_6_18_v1_kmsg() {
    let rs = reports("this-host-6.18-v1.kmsg");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(r.complete);
    assert_eq!((r.seq, r.mono_usec), (Some(2723), Some(7_665_046_865)));
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(26908), Some("tail"))
    );
    assert_eq!(r.gfp_mask.as_deref(), Some("0xcc0(GFP_KERNEL)"));
    let cg = "/memlens-test-oom-26906-0";
    assert_eq!(
        (r.oom_memcg.as_deref(), r.task_memcg.as_deref()),
        (Some(cg), Some(cg))
    );
    assert_eq!(
        (r.constraint.as_deref(), r.global),
        (Some("CONSTRAINT_MEMCG"), false)
    );
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(32768 * KB), Some(32768 * KB), Some(0))
    );
    assert_eq!(
        (r.memsw_usage_bytes, r.memsw_limit_bytes),
        (Some(32768 * KB), Some(32768 * KB))
    );
    assert_eq!(
        (r.kmem_usage_bytes, r.kmem_limit_bytes),
        (Some(124 * KB), None) // the kernel's unlimited sentinel is null
    );
    assert_eq!(r.stat_memcg.as_deref(), Some(cg));
    assert_eq!(r.stat.len(), 42);
    assert_eq!(r.stat[1], ("rss".to_string(), 33427456));
    assert_eq!(stat(r, "hierarchical_memory_limit"), Some(32 * 1024 * 1024));
    assert_eq!(stat(r, "pgfault"), Some(8208));
    assert_eq!(r.stat[41], ("total_unevictable".to_string(), 0));
    assert_eq!(r.tasks.len(), 1);
    let t = &r.tasks[0];
    assert_eq!(
        (t.pid, t.total_vm_bytes, t.rss_bytes),
        (Some(26908), Some(8869 * PAGE), Some(8523 * PAGE))
    );
    assert_eq!(
        (t.rss_anon_bytes, t.rss_file_bytes, t.rss_shmem_bytes),
        (Some(8160 * PAGE), Some(363 * PAGE), Some(0))
    );
    assert_eq!(
        (t.pgtables_bytes, t.swap_bytes, t.name.as_deref()),
        (Some(106496), Some(0), Some("tail"))
    );
    let v = Victim {
        pid: Some(26908),
        comm: Some("tail".into()),
        total_vm_bytes: Some(35476 * KB),
        anon_rss_bytes: Some(32640 * KB),
        file_rss_bytes: Some(1452 * KB),
        shmem_rss_bytes: Some(0),
        pgtables_bytes: Some(104 * KB),
        uid: Some(0),
        oom_score_adj: Some(0),
    };
    assert_eq!(r.victim.as_ref(), Some(&v));
    assert_eq!(r.lines.len(), 79);
}

#[test]
fn debian_6_1_v2_kmsg() {
    // Values read off the records by eye (see SOURCES.md).
    let rs = reports("debian-6.1-v2.kmsg");
    assert_eq!(rs.len(), 1);
    let r = &rs[0];
    assert!(r.complete);
    assert_eq!((r.seq, r.mono_usec), (Some(378), Some(7_193_712)));
    assert_eq!(
        (r.trigger.pid, r.trigger.comm.as_deref()),
        (Some(142), Some("tail"))
    );
    assert_eq!(
        (r.gfp_mask.as_deref(), r.order, r.oom_score_adj),
        (Some("0xcc0(GFP_KERNEL)"), Some(0), Some(0))
    );
    let cg = "/memlens-test-oom-138-0";
    assert_eq!(
        (r.oom_memcg.as_deref(), r.task_memcg.as_deref()),
        (Some(cg), Some(cg))
    );
    assert_eq!(
        (r.constraint.as_deref(), r.global),
        (Some("CONSTRAINT_MEMCG"), false)
    );
    assert_eq!(
        (r.usage_bytes, r.limit_bytes, r.failcnt),
        (Some(32768 * KB), Some(32768 * KB), Some(20))
    );
    assert_eq!((r.swap_usage_bytes, r.swap_limit_bytes), (Some(0), Some(0)));
    assert_eq!(r.memsw_usage_bytes, None);
    // One record, 51 keys separated by \x0a.
    assert_eq!(r.stat_memcg.as_deref(), Some(cg));
    assert_eq!(r.stat.len(), 51);
    assert_eq!(r.stat[0], ("anon".to_string(), 33431552));
    assert_eq!(stat(r, "file"), Some(0));
    assert_eq!(stat(r, "kernel"), Some(122880));
    assert_eq!(stat(r, "pagetables"), Some(94208));
    assert_eq!(stat(r, "anon_thp"), Some(2097152));
    assert_eq!(stat(r, "slab_unreclaimable"), Some(4664));
    assert_eq!(stat(r, "pgfault"), Some(8189));
    assert_eq!(r.stat[50], ("thp_collapse_alloc".to_string(), 1));
    assert_eq!(r.tasks.len(), 1);
    let t = &r.tasks[0];
    assert_eq!(
        (t.pid, t.tgid, t.total_vm_bytes, t.rss_bytes),
        (Some(142), Some(142), Some(8684 * PAGE), Some(8495 * PAGE))
    );
    // 6.1's table has no rss_anon/rss_file/rss_shmem columns.
    assert_eq!(
        (t.rss_anon_bytes, t.rss_file_bytes, t.rss_shmem_bytes),
        (None, None, None)
    );
    assert_eq!(
        (t.pgtables_bytes, t.swap_bytes, t.name.as_deref()),
        (Some(106496), Some(0), Some("tail"))
    );
    let v = Victim {
        pid: Some(142),
        comm: Some("tail".into()),
        total_vm_bytes: Some(34736 * KB),
        anon_rss_bytes: Some(32632 * KB),
        file_rss_bytes: Some(4 * KB),
        shmem_rss_bytes: Some(1344 * KB),
        pgtables_bytes: Some(104 * KB),
        uid: Some(0),
        oom_score_adj: Some(0),
    };
    assert_eq!(r.victim.as_ref(), Some(&v));
    // 59 records, the stat record split into its 51 lines.
    assert_eq!(r.lines.len(), 58 + 51);
    assert_eq!(memlens::oom::verdict(r).id, "anon-growth");
}

#[test]
fn syslog_without_bracketed_time_and_dmesg_t() {
    // The AKS report re-prefixed as journalctl -k without printk times, and as dmesg -T.
    let text = fixture("aks-5.15-v2-then-cut.syslog");
    let plain: String = text
        .lines()
        .map(|l| {
            let mut l = parse_line(l);
            if l.is_kernel() {
                l.text = format!("Oct 12 19:00:20 aks kernel: {}", l.text);
            } else {
                l.text = format!(
                    "Oct 12 19:00:20 aks {}: {}",
                    l.ident.unwrap_or_default(),
                    l.text
                );
            }
            l.text + "\n"
        })
        .collect();
    let a = reports("aks-5.15-v2-then-cut.syslog");
    let b = parse_reports(&parse_log(&plain));
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].mono_usec, None);
    assert_eq!(
        (&b[0].victim, &b[0].stat, &b[0].tasks),
        (&a[0].victim, &a[0].stat, &a[0].tasks)
    );

    let dmesg_t: String = fixture("ubuntu-4.15-docker.log")
        .lines()
        .map(|l| format!("[Tue Mar  5 10:11:12 2019] {}\n", parse_line(l).text))
        .collect();
    let r = &parse_reports(&parse_log(&dmesg_t))[0];
    assert_eq!(r.time.as_deref(), Some("2019-03-05T10:11:12"));
    assert!(r.complete);
}

#[test]
fn fill_wall_times_from_boot_time() {
    let mut rs = reports("ubuntu-4.15-docker.log");
    memlens::kmsg::oom::fill_wall_times(&mut rs, 1_700_000_000);
    // 1_700_000_000 + 193038.106393 s
    assert_eq!(rs[0].time.as_deref(), Some("2023-11-17T03:50:38.106393Z"));
}

#[test]
fn truncations_at_every_line() {
    for name in FIXTURES {
        let text = fixture(name);
        let all: Vec<&str> = text.lines().collect();
        let full = parse_reports(&parse_log(&text));
        for cut in 0..=all.len() {
            let head = parse_reports(&parse_log(&all[..cut].join("\n")));
            let tail = parse_reports(&parse_log(&all[cut..].join("\n")));
            assert!(
                head.len() <= full.len() + 1 && tail.len() <= full.len() + 1,
                "{name} cut at {cut}"
            );
            // A report cut short is never claimed complete unless its victim made it in.
            for r in head.iter().chain(&tail).filter(|r| r.complete) {
                assert!(r.victim.is_some(), "{name} cut at {cut}");
            }
        }
    }
}

const FIXTURES: [&str; 8] = [
    "debian-6.1-v2.kmsg",
    "el7-3.10-memcg-back-to-back.log",
    "el7-3.10-global-sysrq.log",
    "ubuntu-4.15-docker.log",
    "k8s-v1-start-cut.kmsg",
    "qemu-6.11-global.log",
    "aks-5.15-v2-then-cut.syslog",
    "this-host-6.18-v1.kmsg",
];

fn all_fixture_lines() -> Vec<String> {
    FIXTURES
        .iter()
        .flat_map(|f| fixture(f).lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let lines = parse_log(&s);
        let _ = parse_reports(&lines);
    }

    #[test]
    fn arbitrary_lines_never_panic(lines in proptest::collection::vec(any::<String>(), 0..50)) {
        let parsed: Vec<LogLine> = lines.iter().map(|l| parse_line(l)).collect();
        let _ = parse_reports(&parsed);
    }

    #[test]
    fn fixture_lines_mixed_with_noise(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), proptest::option::of("\\PC{0,80}")), 0..200),
    ) {
        let pool = all_fixture_lines();
        let mut text = String::new();
        for (i, noise) in picks {
            text.push_str(i.get(&pool).as_str());
            text.push('\n');
            if let Some(n) = noise {
                text.push_str(&n);
                text.push('\n');
            }
        }
        let rs = parse_reports(&parse_log(&text));
        prop_assert!(rs.len() <= text.lines().count());
    }

    #[test]
    fn fixture_with_byte_damage(name in prop::sample::select(FIXTURES.to_vec()), at in any::<prop::sample::Index>(), junk in "\\PC{0,8}") {
        let text = fixture(name);
        let cut = at.index(text.len() + 1);
        let cut = (0..=cut).rev().find(|&c| text.is_char_boundary(c)).unwrap_or(0);
        let damaged = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        let _ = parse_reports(&parse_log(&damaged));
    }
}
