"""A stopped job's process group is waited for until it ends, and a zombie has ended."""

import subprocess
import sys
import textwrap

# Runs in a process of its own: it becomes a subreaper (as bench/harness.py does) that never
# reaps, so the orphaned child of the group leader stays in the group as a zombie.
_SCRIPT = textwrap.dedent(
    """
    import ctypes, subprocess, sys, time
    from adstream.services.process import end_group, group_states

    assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    leader = subprocess.Popen(
        # posix_spawn, not Popen: a Popen's finalizer reaps a child that ended already.
        [sys.executable, "-c", "import os; os.posix_spawnp('true', ['true'], os.environ)"],
        start_new_session=True,
    )
    leader.wait()

    deadline = time.monotonic() + 30
    while "Z" not in group_states(leader.pid).values():
        assert time.monotonic() < deadline, "the orphan never exited"
        time.sleep(0.05)
    end_group(leader)
    print("ended")
    """
)


def test_a_group_left_with_only_a_zombie_is_ended() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ended"]
