"""kdlib.bench end to end on a small synthetic set: both sides run, every row is printed."""

import pytest
import torch

from kdlib import bench


def test_bench_times_both_sides_and_prints_a_row_per_workload(capsys, tmp_cache):
    bench.main(["--data", "synthetic", "--subset", "256", "--workloads", "student CE", "student KD",
                "student grad AT"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in out.splitlines()
            if line.startswith("| student")}
    assert list(rows) == ["student CE", "student KD", "student grad AT"]
    for workload, cells in rows.items():
        seconds_a, seconds_b, targets = (float(c) for c in cells[:3])  # printed to 0.1 s
        assert seconds_a >= 0 and seconds_b >= 0 and cells[5].strip().endswith("x")
        assert cells[6].strip().endswith("x")  # per whole recipe, the targets included
        assert (targets > 0) == (workload != "student CE")  # CE needs no teacher targets
        assert 0 <= float(cells[7].strip(" %")) <= 100 and 0 <= float(cells[8].strip(" %")) <= 100
    assert "a KD epoch costs" in out


def test_bench_times_students_trained_together_per_seed(capsys, tmp_cache):
    bench.main(["--data", "synthetic", "--subset", "256", "--only", "kdlib", "--together", "2",
                "--workloads", "student CE", "student act AT"])
    out = capsys.readouterr().out
    assert "students 2 seeds together, (b) per seed" in out
    rows = [line for line in out.splitlines() if line.startswith("| student")]
    assert len(rows) == 2 and all(float(r.split("|")[3]) > 0 for r in rows)


def test_the_cpu_bench_times_every_workload_against_the_peak(tmp_path):
    import json
    import subprocess
    import sys
    out = tmp_path / "cpu.json"
    done = subprocess.run([sys.executable, "-m", "kdlib.cpubench", "--data", "synthetic", "--images", "256",
                           "--epochs", "1", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(out.read_text())
    assert measured["cpu"] in done.stdout and measured["precision"] in ("bf16", "float32")
    assert set(measured["workloads"]) >= {"student CE", "student KD", "student grad AT", "student cosine", "teacher CE",
                                          "teacher targets (8 views)", "evaluation (test set)", "map similarity"}
    # a training step is a forward pass and a backward pass of about twice its FLOPs (the first conv
    # computes no grad of its input): counted per image, not per batch, and both directions
    from torch.utils.flop_counter import FlopCounterMode
    from kdlib.models import build
    forward_gflop = {}
    for workload, architecture in (("student CE", "LightNN"), ("teacher CE", "DeepNN")):
        with FlopCounterMode(display=False) as counter:
            build(architecture, 10, seed=0)(torch.randn(1, 3, 32, 32))
        forward_gflop[workload] = counter.get_total_flops() / 1e9
    for workload in ("student CE", "teacher CE"):
        for t, row in measured["workloads"][workload].items():
            assert row["images_per_s"] == pytest.approx(256 / row["seconds"])
            # the share is the step's counted FLOPs at the measured speed over the matmul peak ...
            assert row["peak_share"] == pytest.approx(row["gflop_per_image"] * row["images_per_s"]
                                                      / measured["peaks"][str(t)])
            # ... of a step of the right size: counted per image, not per batch (128x), both directions
            assert 2.5 * forward_gflop[workload] < row["gflop_per_image"] < 3.1 * forward_gflop[workload]
    # The precision can be asked for, so that bf16 and float32 can be set side by side on one CPU.
    done = subprocess.run([sys.executable, "-m", "kdlib.cpubench", "--data", "synthetic", "--images", "256",
                           "--epochs", "1", "--amp", "off", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text())["precision"] == "float32" and "precision float32" in done.stdout


def test_an_instruction_set_cap_is_read_from_the_environment_and_named():
    # How an AVX-512 CPU stands in for an AVX2 laptop; the bench then asks for float32 itself.
    from kdlib import cpubench
    assert cpubench.isa_cap({}) is None
    assert cpubench.isa_cap({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}) is None
    assert cpubench.isa_cap({"ATEN_CPU_CAPABILITY": "avx2"}) == "ATEN_CPU_CAPABILITY=avx2"
    both = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert cpubench.isa_cap(both) == "ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2"
    assert cpubench.machine(both).endswith(", held at AVX2 by ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2")
