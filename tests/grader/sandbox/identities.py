"""Programs that test the two identities in a sandbox (bwrap and docker): the orchestrator starts
`KERNEL` under the kernel's uid, as the runner does, and prints what each identity could do."""

KERNEL = """
import json, os, signal
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
out = {"uid": os.getuid(), "caps": status["CapEff"].strip() + status["CapBnd"].strip()}
for name, attempt in {
    "signal": lambda: os.kill(os.getppid(), signal.SIGKILL),
    "write_out": lambda: open("/home/student/out/forged.json", "w").write("{}"),
    "list_out": lambda: os.listdir("/home/student/out"),
    "write_work": lambda: open("/home/student/work/mine", "w").write("ok"),
}.items():
    try:
        attempt()
        out[name] = "allowed"
    except PermissionError:
        out[name] = "denied"
print(json.dumps(out))
"""

ORCHESTRATOR = f"""
import json, os, subprocess, sys
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
uid = int(os.environ["DGM_KERNEL_UID"])
drop = ["setpriv", f"--reuid={{uid}}", f"--regid={{uid}}", "--clear-groups", "--inh-caps=-all",
        "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
kernel = subprocess.run([*drop, sys.executable, "-c", {KERNEL!r}], capture_output=True, text=True)
print(json.dumps({{"me": os.getuid(), "caps": status["CapEff"].strip(), "kernel": json.loads(kernel.stdout)}}))
"""
