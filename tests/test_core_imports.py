"""The numeric core must import in a numpy/scipy-only environment (docs/architecture.md, 'Conventions')."""

import subprocess
import sys
import textwrap
from pathlib import Path

import lowrankdp

# Modules allowed to need torch/transformers/peft/opacus; everything else is core.
TORCH_LAYER_PREFIXES = (
    "lowrankdp.finetune",
    "lowrankdp.models",
    "lowrankdp.measure",
    "lowrankdp.attacks.lora_fa",
)


def _all_modules():
    root = Path(lowrankdp.__file__).parent
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":
            continue
        yield ".".join(parts)


def test_core_modules_import_without_torch():
    core = [m for m in _all_modules() if not m.startswith(TORCH_LAYER_PREFIXES)]
    assert "lowrankdp" in core and "lowrankdp.cli" in core
    code = textwrap.dedent(
        f"""
        import importlib, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {{"torch", "transformers", "peft", "opacus"}}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        failed = []
        for m in {core!r}:
            try:
                importlib.import_module(m)
            except Exception as e:
                failed.append(m + ": " + repr(e))
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_help_lists_subcommands_without_torch():
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"torch", "transformers", "peft", "opacus"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from lowrankdp.cli import build_parser
        build_parser().format_help()
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
