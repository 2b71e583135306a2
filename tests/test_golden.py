"""Golden results: refactors of the round must keep every method's numbers bit for bit.

Each job is a small real run (``python -m hpcfed.run``). Its ``final_model_sha256`` and a digest of
its science columns (every rounds/clients/eval column that does not depend on the machine) were
recorded from commit 28797d7, before the round became explicit values (issue 10). A change that
moves any of them changes what a method computes; if that is intended, say so and record anew with
``python tests/test_golden.py`` (prints the table).
"""
from __future__ import annotations

import hashlib
import sys

import h5py
import numpy as np
import pytest

from tests.launch import run_hpcfed

TINY = ["rounds=3", "clients.total=12", "clients.per_round=4", "train.local_epochs=1", "eval.every=3",
        "model.widths=[8,16]", "model.stem=8", "model.width_choices=[0.5,1.0]"]
TIERED = "devices.memory_mb=[0.2,1.0]"   # the tiny space's tiers need 0.30 and 0.66 MiB: both tiers occur

# label: (overrides, final_model_sha256, science digest)
GOLDEN = {
    "superfed": ([], "f8269874d24b6456cd117d29dd100788dbedc476802ef24ae563f8296b3e2191",
                 "aa6549895cbf35ba39f3bf9d688927a0131693ddf68c897447a200b0224f8e13"),
    "superfed-uniform-random": (["strategy.superfed.weighting=uniform", "strategy.superfed.distribution=random",
                                 "strategy.superfed.sample_weighted=true"],
                                "d69cf73c44a4a06444f755282b2b2c8cd5b676f8fb5b27df945c6617a3efec43",
                                "854d59a50859f24abd44ea1473006895a33af54578f12e2a7753a5171b3f9a12"),
    "superfed-deadline": ([TIERED, "clients.deadline_s=2.0", "clients.overselect=0.5"],
                          "79ac722d4e84a30d8fd9d76f9abc0e7cc5639626a52f2769d7ff9740764b600a",
                          "abc841f760d4cee78a44c5664121ced853725ddc20a9419dfe7111206eb8cf46"),
    "superfed-mobilenet": (["model.space=mobilenet", "model.kernel_choices=[3,5]"],
                           "14569f7a764783ddb687d11c9b1253d4358e4cd798c4b4c1ee74648fd59f7757",
                           "26452be50aac60ae05ef1fa570f6365a1bcc7c9cbe94a9599a33c9b5147e0f1e"),
    "superfed-faults": (["faults.nan_at=[[3,1],[5,1],[7,1],[9,1]]"],
                        "c4922c53457731f90256401178a3205211f1ed8bf9c5a84e48b650de082d0702",
                        "1fbccea5ff26af484b047482226386105c59436581fc9f5bae46727b74180729"),
    "fedavg": ([TIERED], "335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
               "fb56c743f2a82f158442ad12670648716a84b009834df7e4d361d73cd8ae5b71"),
    "fedavg-smallest-batched": (["strategy.fedavg.arch=smallest", "train.batch_clients=3"],
                                "eba57a0e1165821bd8de0a4ad59944c9b5abca6fe9bf0a64368b7c70ea8b8006",
                                "6b5f44a80ee08c9315a5522857fb592379a4b153741642f580924fdd1767ffe9"),
    "fedavg-synthetic": (["data.name=synthetic", "data.partition=natural"],
                         "cb9a5c5b56fcb0002016d7dc802815537698a22333aaedc3fed6e92ebdfddb53",
                         "44419789985d07eb1b2e8398c19e104d80a859e433c24098534a81c27184a43d"),
    # one model: iFedAvg of the largest subnet is FedAvg of it, bit for bit
    "ifedavg-largest": ([TIERED, "strategy.ifedavg.archs=[largest]"],
                        "335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
                        "fb56c743f2a82f158442ad12670648716a84b009834df7e4d361d73cd8ae5b71"),
    "heterofl": ([TIERED], "dfb801a0ca581a2f6a37df4560f396dbd1efe01f5ea92651f078cca3e61ac44c",
                 "e6534cd2225bb54b5c788fcbaaddfd15cefb661cfaaf31677384b7e9f858f137"),
    "heterofl-batched": ([TIERED, "train.batch_clients=2"],
                         "2cec20e69c15f98a6815da552c8106d50aa8730898b5b847226402db1bbb14e0",
                         "20bf293f7afc53ced0e934e33963526b8aa6b192c40ea4bfc8eaa536c5696124"),
    "fedrolex": ([TIERED], "232e1ce764237e41279eee4da269bc5e1689ae10b13e5cbae42aeeb94d6f19d4",
                 "22d2e9919444ea5a495f90c7f0e0205bee7b4c8ac036ead376c3dfb1dc400633"),
    "feddropout": ([TIERED], "02fdd5e6c7fcc5836e79662fbd09690572d2e4a5984d08aa84bce7484128024e",
                   "b0f6b3fd56e6c360d5bd6ceb2c463e4584d08be96e2db6c93ecf5976953cd06c"),
    "fedsup": ([], "d4ba6f698f15a06567895cf6052e51d29f159c36f83f15c77bda49b2a1a1be9e",
               "ac57f1d797899631ffe16310f0474c019356f8572bd0cf25405b065a500caf0a"),
    "fedsup-nodistill": (["strategy.fedsup.distill=false"],
                         "ef6d9ee2da30b5887b8c82a01923040600f0a30cd602bbf67084cb3587d7706f",
                         "443a2bcd834e8a26d073ced5a6968d7b87c19efa88e769a92d88970f5c1732af"),
    "efedsup": ([TIERED], "53fbd23301b36053948b8a6a53a8ec08c5e0a19018dcfbac98b5956b0b5b268f",
                "57ed0da21dd3fe031b4bf8c4d826bcc8a67e80f7f8ae3d2ce5f4eacbc1797337"),
    "efedsup-fixed4-selected": ([TIERED, "strategy.efedsup.tiers=fixed4", "strategy.efedsup.merge=selected"],
                                "d6f0f4f8279608896270e56ba001e8efd26b9bc8dc34b1a0e8b31bc062796f73",
                                "19a4fb31de7443d1a9a854f3d0193d2c6fd17b4aa4379b9cacd3fab53163b88f"),
    "fjord": ([TIERED], "05348ac13fe85733d79289f27492d586ef912a20d5d5e0194f3a92e9de804328",
              "b35e1c532ac7aec65d61c9acdbd2b605e1d8540a19b8fa41b74257ed51ff5b03"),
    "fjord-nodistill": ([TIERED, "strategy.fjord.distill=false"],
                        "2d99e2c109f9b912610046b902b63a1b94c551a06faa614842afe2b07c49056c",
                        "6b78d2e040a8f44d1bdf212012a2826cf8fbe3cc98e15195051e53cbae63c45e"),
}

# The columns the digest covers, as they were when it was recorded (new columns do not enter it).
ROUND_SCIENCE = ("bytes_down", "bytes_up", "clients", "dropped", "macs", "rejected", "round", "slice_bytes",
                 "train_loss", "virtual_time_s")
CLIENT_SCIENCE = ("arch_id", "bytes_down", "bytes_up", "client", "loss", "macs", "made_deadline", "rank", "round",
                  "samples", "sim_time_s", "weight")
EVAL_SCIENCE = ("accuracy", "round")


def overrides(label: str) -> list[str]:
    extra, _, _ = GOLDEN[label]
    return [a for kv in [*TINY, f"strategy.name={label.split('-')[0]}", *extra] for a in ("--set", kv)]


def science_digest(path) -> str:
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for group, columns in (("rounds", ROUND_SCIENCE), ("clients", CLIENT_SCIENCE), ("eval", EVAL_SCIENCE)):
            for col in columns:
                h.update(np.ascontiguousarray(f[group][col][()]).tobytes())
        return h.hexdigest()


def run_golden(label: str, out) -> tuple[str, str]:
    proc = run_hpcfed([*overrides(label), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        return str(f.attrs["final_model_sha256"]), science_digest(out)


@pytest.mark.parametrize("label", sorted(GOLDEN))
def test_every_method_gives_its_golden_weights_and_rows(tmp_path, label):
    _, sha, digest = GOLDEN[label]
    assert run_golden(label, tmp_path / "run.h5") == (sha, digest)


if __name__ == "__main__":   # print the table anew (python tests/test_golden.py)
    import tempfile
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as folder:
        for label in GOLDEN:
            print(label, *run_golden(label, Path(folder) / f"{label}.h5"), flush=True)
