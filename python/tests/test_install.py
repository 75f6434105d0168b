"""`cmake --install` puts the module under <prefix>/$AMQ_PYTHON_INSTALL_DIR, and
/usr/bin/python3 imports it from there with PYTHONPATH, away from the build and
source trees (ctest python.install)."""
import os
import subprocess
import sys

import numpy as np

from amq import _export_torch as export_torch
from conftest import BUILD_DIR, randn, torch_rnn

INSTALL_DIR = os.environ.get("AMQ_PYTHON_INSTALL_DIR",
                             f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages")

SCRIPT = """
import sys
import numpy as np
import amq, amq.torch
m = amq.quantize(sys.argv[1], wbits=2, abits=2)
x = np.load(sys.argv[2])
np.save(sys.argv[3], m.run(x))
print(amq.__file__)
"""


def test_import_from_install_prefix(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD_DIR, "--component", "python", "--prefix",
                    str(prefix)], check=True, capture_output=True)
    site = prefix / INSTALL_DIR
    installed = sorted(p.name for p in (site / "amq").iterdir())
    assert "__init__.py" in installed and "torch.py" in installed and "_export_torch.py" in installed
    assert any(n.startswith("_amq") and n.endswith(".so") for n in installed), installed

    src = tmp_path / "m.safetensors"
    export_torch.export_rnn(str(src), torch_rnn("gru", 12, 30, seed=1))
    x = randn(5, 2, 12, seed=2)
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(src), str(tmp_path / "x.npy"),
                        str(tmp_path / "out.npy")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith(str(site)), p.stdout

    import amq  # this build's module: the installed one computes the same
    expected = amq.quantize(str(src), wbits=2, abits=2).run(x)
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)
