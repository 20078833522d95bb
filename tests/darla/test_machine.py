"""darla.machine reads the CPU's model and the ISA flags that change torch's code paths."""
from darla.machine import cpu_flags, cpu_model, describe

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_reads_model_and_flags_of_interest(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(CPUINFO)
    assert cpu_model(f) == "Intel(R) Xeon(R) Processor"
    assert cpu_flags(f) == ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]


def test_a_cpu_without_bf16_reports_no_bf16_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(CPUINFO.replace(" avx512_bf16 amx_bf16 amx_tile", ""))
    assert "avx512_bf16" not in cpu_flags(f) and "amx_bf16" not in cpu_flags(f)


def test_missing_cpuinfo_falls_back(tmp_path):
    assert isinstance(cpu_model(tmp_path / "absent"), str)
    assert cpu_flags(tmp_path / "absent") == []


def test_describe_names_the_machine():
    info = describe()
    assert info["cpus"] >= 1 and info["cpu_model"] and "torch" in info
