"""`agit reproduce --executor submitit:…` on a real SLURM: one node on localhost, started here.

The fixture configures Debian's slurm-wlm and munge in a temporary folder (root is the
SlurmUser), starts munged, slurmctld and slurmd, and stops them by PID afterwards. It needs
root and the packages (.ci/run installs them): elsewhere the module is skipped, and under
AGIT_SLURM_REQUIRED=1 (.ci/run) a cluster that cannot start is a failure.
The scheduler's record of each job is its job-completion log (jobcomp/filetxt) and
`scontrol show job`. `sacct` needs slurmdbd and a database, which this cluster does without;
submitit asks `sacct` for the state of a job that ended without a result (one stopped by a
signal), so the fixture puts first on PATH an `sacct` answering that one query from slurmctld.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from agit import reproduce
from agit.cli import main
from agit.run import Run
from agit.specs import RunSpec

REQUIRED = bool(os.environ.get("AGIT_SLURM_REQUIRED"))  # .ci/run: a cluster that cannot start fails
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel")
TABLES = ("table1_kid", "table2_ablations", "claims", "fig7_switch_sweep", "fig8_tau_sweep")
SLURM = "submitit:slurm_partition=debug,cpus_per_task=1"


def cannot_start() -> str | None:
    missing = [d for d in DAEMONS if not shutil.which(d)]
    if missing:
        return f"needs {', '.join(missing)} (apt-get install slurm-wlm munge; .ci/run does)"
    if os.geteuid() != 0:
        return "the one-node SLURM runs its daemons as root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(d: Path) -> str:
    return f"""ClusterName=agit
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
AccountingStorageType=accounting_storage/none
KillWait=30
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder

    def job(self, job_id: str) -> dict:
        """`scontrol show job`'s fields (JobState, ExitCode, RunTime, …); {} once forgotten."""
        out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
        return dict(f.split("=", 1) for f in out.split() if "=" in f)

    def completed(self) -> dict[str, dict]:
        """The job-completion log: {job id: its fields}, every job that ended."""
        log = self.folder / "jobcomp.txt"
        rows = [dict(f.split("=", 1) for f in line.split() if "=" in f)
                for line in (log.read_text().splitlines() if log.is_file() else [])]
        return {r["JobId"]: r for r in rows}


# submitit's query: sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID …]
SACCT = """#!/bin/sh
echo 'JobID|State|NodeList'
while [ $# -gt 0 ]; do
  if [ "$1" = -j ]; then
    scontrol -o show job "$2" | sed -E 's/^JobId=([0-9]+) .* JobState=([A-Z_]+) .* NodeList=([^ ]*) .*/\\1|\\2|\\3/'
    shift
  fi
  shift
done
"""


def start(folder: Path) -> tuple[Cluster, list[Path]]:
    (folder / "bin").mkdir()
    (folder / "bin" / "sacct").write_text(SACCT)
    (folder / "bin" / "sacct").chmod(0o755)
    os.environ["PATH"] = f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}"
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    subprocess.run(["mungekey", "-c", "-k", str(folder / "munge.key")], check=True)
    subprocess.run(["munged", "-f", f"--key-file={folder}/munge.key", f"--socket={folder}/munge.sock",
                    f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log",
                    f"--seed-file={folder}/munged.seed"], check=True)
    pids = [folder / "munged.pid"]
    (folder / "slurm.conf").write_text(slurm_conf(folder))
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    subprocess.run(["slurmctld", "-i"], check=True)
    pids.append(folder / "slurmctld.pid")
    subprocess.run(["slurmd", "-N", "localhost"], check=True)
    pids.append(folder / "slurmd.pid")
    for _ in range(60):
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
        if state == "idle":
            return Cluster(folder), pids
        time.sleep(0.5)
    raise RuntimeError(f"the node never became idle (sinfo: {state!r}); see {folder}/slurmd.log")


def stop(pids: list[Path]):
    subprocess.run(["scancel", "--user", "root"], capture_output=True)
    for pid_file in reversed(pids):  # slurmd, slurmctld, munged
        if pid_file.is_file():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = cannot_start()
    if reason and not REQUIRED:
        pytest.skip(reason)
    assert reason is None, reason
    folder, saved = tmp_path_factory.mktemp("slurm"), {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    pids = []
    try:
        try:
            found, pids = start(folder)
        except (subprocess.CalledProcessError, RuntimeError) as err:
            if REQUIRED:
                raise
            pytest.skip(f"the one-node SLURM did not start here: {err}")
        yield found
    finally:
        stop(pids or [folder / f for f in ("munged.pid", "slurmctld.pid", "slurmd.pid")])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def job_ids(out: Path) -> list[str]:
    """The SLURM job ids submitit used under `out`, from its log names (<job id>_0_log.out)."""
    return sorted({p.name.split("_")[0] for p in (out / "submitit").glob("*_0_log.out")}, key=int)


def long_run(ctx, epochs: int) -> str:
    """A run of the ci profile long enough to stop mid-way (the ci preset: ~0.2 s an epoch here)."""
    spec = RunSpec(f"long{epochs}", ctx.profile["main_dataset"], overrides={"epochs": epochs, "decay_epoch": epochs})
    ctx.extra[spec.key] = spec
    return spec.key


def ended(cluster, job: str) -> dict:
    """The job-completion record of `job`, once slurmctld has written it (just after the job's result)."""
    for _ in range(100):
        if job in cluster.completed():
            return cluster.completed()[job]
        time.sleep(0.3)
    raise AssertionError(f"job {job} never ended: {cluster.job(job)}")


def test_time_limit_and_scancel_stop_jobs_resumable(cluster, tmp_path, keep_threads, capsys):
    """Two jobs side by side (the node's two CPUs). A 1-minute job: submitit asks SLURM for SIGUSR2
    30 s ahead of the limit; training checkpoints and the job exits 75, the README's promise.
    A job cancelled mid-run (scancel: SIGTERM) is resumed from its checkpoint by the next run."""
    data = os.environ["AGIT_DATA"]
    timed = reproduce.context("ci", tmp_path / "timed", data, executor=f"{SLURM},timeout_min=1,slurm_signal_delay_s=30")
    ctx = reproduce.context("ci", tmp_path / "cancelled", data, executor=f"{SLURM},timeout_min=10")
    key, long_key = long_run(ctx, 60), long_run(timed, 2000)  # 2000 epochs: far more than a minute
    ctx.prepare_data(check_kid=False)  # once, before the two threads would both make it
    start, errors = time.time(), []

    def expect_no_result(c, k):  # a stopped job leaves no result: ensure_runs raises, the run stays resumable
        with pytest.raises(Exception, match="has not produced any output") as err:
            c.ensure_runs([k], evaluate=False)
        errors.append(err)

    limited = threading.Thread(target=expect_no_result, args=(timed, long_key))
    first = threading.Thread(target=expect_no_result, args=(ctx, key))
    limited.start()
    while not job_ids(tmp_path / "timed"):  # submitted: its data check (under the dataset's lock) is done
        assert limited.is_alive() and time.time() - start < 120, "the time-limited job was not submitted"
        time.sleep(0.2)
    first.start()
    run = Run(ctx.run_dir(key))
    while (run.progress() or (0, 0))[0] < 3:
        assert first.is_alive(), "the job ended before it could be cancelled"
        time.sleep(0.2)
    (job,) = job_ids(tmp_path / "cancelled")
    assert cluster.job(job)["JobState"] == "RUNNING"
    subprocess.run(["scancel", job], check=True)
    first.join(timeout=120)
    cancelled, stopped_at = ended(cluster, job), run.progress()
    assert cancelled["JobState"] == "CANCELLED" and stopped_at[0] < 60
    capsys.readouterr()
    ctx.ensure_runs([key], evaluate=False)  # what the next agit reproduce does
    assert f"{key}: resumed" in capsys.readouterr().out
    (again,) = [j for j in job_ids(tmp_path / "cancelled") if j != job]
    assert ended(cluster, again)["JobState"] == "COMPLETED" and run.progress()[0] == 60

    limited.join(timeout=240)
    assert len(errors) == 2
    (timed_job,) = job_ids(tmp_path / "timed")
    record = ended(cluster, timed_job)
    assert record["ExitCode"] == "75:0"
    log = (tmp_path / "timed" / "submitit" / f"{timed_job}_0_log.err").read_text()
    assert "agit: interrupted, resumable: SIGUSR2 at epoch" in log
    state = Run(timed.run_dir(long_key)).progress()
    assert state is not None and 0 < state[0] < 2000  # a checkpoint mid-run: resumable
    print(f"\nscancel: job {job} {cancelled['JobState']} at epoch {stopped_at[0]} (exit {cancelled['ExitCode']}), "
          f"job {again} resumed it to epoch 60; time limit: job {timed_job} {record['JobState']} exit "
          f"{record['ExitCode']}, {record['StartTime']} - {record['EndTime']}; {time.time() - start:.0f} s")


def test_reproduce_on_slurm_writes_the_tables_of_a_local_run(cluster, tmp_path, keep_threads):
    """The tables' notebook with every run as a SLURM job, against the same notebook run locally."""
    data = os.environ["AGIT_DATA"]
    local = Path(os.environ["AGIT_RESULTS"])  # test_notebooks.py's local run, when it ran before
    if not all((local / "tables" / f"{t}.csv").is_file() for t in TABLES):
        local = tmp_path / "local"
        assert main(["reproduce", "--profile", "ci", "--stages", "04", "--out", str(local), "--data", data]) == 0
    start = time.time()
    assert main(["reproduce", "--profile", "ci", "--stages", "04", "--out", str(tmp_path / "slurm"), "--data", data,
                 "--jobs", "2", "--executor", f"{SLURM},timeout_min=20"]) == 0
    jobs = job_ids(tmp_path / "slurm")
    done = {j: ended(cluster, j) for j in jobs}
    print(f"\nreproduce on SLURM: {len(jobs)} jobs ({jobs[0]}-{jobs[-1]}) in {time.time() - start:.0f} s")
    assert len(jobs) == len(list((tmp_path / "slurm" / "runs").glob("*/*/config.json")))  # one job a run
    assert all(done[j]["JobState"] == "COMPLETED" and done[j]["ExitCode"] == "0:0" for j in jobs)
    for table in TABLES:
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "slurm" / "tables" / f"{table}.csv"),
                                      pd.read_csv(local / "tables" / f"{table}.csv"), obj=table)
