#!/usr/bin/python3
"""skiff basics: create a sandbox, run commands, stream output, move files, terminate.

    SKIFF_URL=http://127.0.0.1:7433 SKIFF_TOKEN=$(cat var/admin.token) /usr/bin/python3 examples/sandbox_basics.py

Written with Modal's names: `import modal` code ports by changing the import.
"""

import os
import sys
import tempfile
import time

try:
    import skiff
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))
    import skiff


def main() -> None:
    app = skiff.App.lookup("examples", create_if_missing=True)

    # No network by default (unlike Modal): skiff sandboxes are closed unless asked otherwise.
    with skiff.Sandbox.create(app=app, timeout=120, env={"GREETING": "hello"}, workdir="/work",
                              tags={"example": "basics"}) as sb:
        print(f"created {sb.object_id} (tags {sb.get_tags()})")

        # 1. a command, its output and exit status
        p = sb.exec("sh", "-c", "echo $GREETING from $(hostname); uname -s; exit 3")
        print("stdout:", p.stdout.read().strip().replace("\n", " | "), "- exit status", p.wait())

        # 2. streaming: lines arrive as the process writes them
        t0 = time.monotonic()
        p = sb.exec("sh", "-c", "for i in 1 2 3 4 5; do echo step $i; sleep 0.1; done; echo done >&2")
        for line in p.stdout:
            print(f"  +{time.monotonic() - t0:4.2f}s {line}", end="")
        print("  stderr:", p.stderr.read().strip(), "- exit status", p.wait())

        # 3. stdin
        p = sb.exec("python3", "-c", "import sys; print(sum(int(x) for x in sys.stdin.read().split()))")
        p.stdin.write("1 2 3 4\n")
        p.stdin.write_eof()
        print("sum via stdin:", p.stdout.read().strip())

        # 4. files: write, read, list, open
        fs = sb.filesystem
        fs.write_text("print('hi from a file')\n", "/work/app/hello.py")
        print("python:", sb.exec("python3", "/work/app/hello.py").stdout.read().strip())
        with sb.open("/work/app/data.csv", "w") as f:
            f.write("a,b\n1,2\n")
        with sb.open("/work/app/data.csv") as f:
            print("csv header:", f.readline().strip())
        print("files:", [(e.path, e.size) for e in fs.list_files("/work/app")])

        # 5. a whole directory in one tar upload, and back
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "proj", "pkg"))
            with open(os.path.join(d, "proj", "pkg", "mod.py"), "w") as f:
                f.write("X = 42\n")
            res = fs.copy_from_local(os.path.join(d, "proj"), "/work/proj")
            print(f"uploaded {res['files']} file(s), {res['bytes']} bytes")
            out = sb.exec("python3", "-c", "import pkg.mod; print(pkg.mod.X)", workdir="/work/proj").stdout.read()
            print("import from the uploaded tree:", out.strip())
            fs.copy_to_local("/work/proj", os.path.join(d, "back"))
            print("downloaded:", sorted(os.listdir(os.path.join(d, "back", "pkg"))))

        # 6. a signal
        p = sb.exec("sh", "-c", "trap 'echo caught TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done")
        p.stdout.readline()
        p.kill(15)
        print("after SIGTERM:", p.stdout.read().strip(), "- exit status", p.wait())

    print(f"terminated: reason={sb.reason} returncode={sb.returncode}")


if __name__ == "__main__":
    main()
