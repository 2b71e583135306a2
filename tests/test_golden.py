"""Golden results: refactors of the round must keep every method's numbers bit for bit.

Each job is a small real run (``python -m hpcfed.run``). Its ``final_model_sha256`` and the digest of
its training rows (every rounds/clients column that does not depend on the machine) were recorded
from commit 28797d7, before the round became explicit values (issue 10), and have not moved since.
The digest of its reference evaluations (eval/round, eval/accuracy) was recorded anew when
evaluation began to calibrate BatchNorm statistics on training samples instead of taking them from
each test batch (issue 11): with ``model.norm: bn`` the reported accuracies moved, the training did
not. A change that moves any of them changes what a method computes; if that is intended, say so
and record anew with ``python tests/test_golden.py`` (prints the table).
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

# label: (overrides, final_model_sha256, digest of the training rows, digest of the reference evaluations)
GOLDEN = {
    "superfed": ([],
        "f8269874d24b6456cd117d29dd100788dbedc476802ef24ae563f8296b3e2191",
        "32f3853b333d03ba1abe4d1bd7839e9587054af99eaea1b05fb3661841036f25",
        "60fd95b7566ff2f3e44525aad454a8d8cbe0fc6bc5e98181a75a324a470ce678"),
    "superfed-uniform-random": (["strategy.superfed.weighting=uniform", "strategy.superfed.distribution=random",
                                 "strategy.superfed.sample_weighted=true"],
        "d69cf73c44a4a06444f755282b2b2c8cd5b676f8fb5b27df945c6617a3efec43",
        "200231847d4e0566719ff7137597383356f2cc06861be755db585f51a1db1ce7",
        "7485ce83be552d0bd73a9f9aed2f1bd45094cf21587adb71db271cb6aad21619"),
    "superfed-deadline": ([TIERED, "clients.deadline_s=2.0", "clients.overselect=0.5"],
        "79ac722d4e84a30d8fd9d76f9abc0e7cc5639626a52f2769d7ff9740764b600a",
        "e7779334c67e490f540cd123634ec64c79a8b7c282b2ec6ab26d622e1ddcba7a",
        "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
    "superfed-mobilenet": (["model.space=mobilenet", "model.kernel_choices=[3,5]"],
        "14569f7a764783ddb687d11c9b1253d4358e4cd798c4b4c1ee74648fd59f7757",
        "8be9998138deb858e9142d15f3b7e687c761c19ba5b357315006d406993f7ef1",
        "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
    "superfed-faults": (["faults.nan_at=[[3,1],[5,1],[7,1],[9,1]]"],
        "c4922c53457731f90256401178a3205211f1ed8bf9c5a84e48b650de082d0702",
        "7a46b9acbf427587bd6959ef97e01c8b88a169bf8b13398b954cf14039dd3143",
        "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
    "fedavg": ([TIERED],
        "335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
        "3b45fcbb20ed15e59df11e064485310f771cdf893538b7a34e67393f4777d873",
        "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
    "fedavg-smallest-batched": (["strategy.fedavg.arch=smallest", "train.batch_clients=3"],
        "eba57a0e1165821bd8de0a4ad59944c9b5abca6fe9bf0a64368b7c70ea8b8006",
        "61d5a24bd15818b73bff0c019172c3a3e98a2f21c8dc321ceafd66e9a611421c",
        "a143394b8811cd9b80601a46fa3f79a637d6a81e4c86aeb9ffca791e6ae77801"),
    "fedavg-synthetic": (["data.name=synthetic", "data.partition=natural"],
        "cb9a5c5b56fcb0002016d7dc802815537698a22333aaedc3fed6e92ebdfddb53",
        "88bc0dbb6c34b15f57ca187fb5e48676d04314e3b34c08397aee76e63f574de9",
        "322abcc31349c35d2e0de9f4d5bf9f31df602305b10bea6b7bc4a9f970da01af"),
    # one model: iFedAvg of the largest subnet is FedAvg of it, bit for bit (the eval digest too)
    "ifedavg-largest": ([TIERED, "strategy.ifedavg.archs=[largest]"],
        "335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
        "3b45fcbb20ed15e59df11e064485310f771cdf893538b7a34e67393f4777d873",
        "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
    "heterofl": ([TIERED],
        "dfb801a0ca581a2f6a37df4560f396dbd1efe01f5ea92651f078cca3e61ac44c",
        "5f39093beba067dc5da7387cf0a03ba9f7100bfb5e0056f37e980bd7c33bcc1c",
        "be6117e1484949063abce590cc3661a84145d3f677686c16ea437735fe84db2a"),
    "heterofl-batched": ([TIERED, "train.batch_clients=2"],
        "2cec20e69c15f98a6815da552c8106d50aa8730898b5b847226402db1bbb14e0",
        "fd14725f7003557252571b41b2b91c8ad9a32b6a0f8746bb5d72c55e096e1166",
        "2fb7d7d25e335dad9c55f9174e2c9488cbd9a88042417b0c2cbf93755f1af01f"),
    "fedrolex": ([TIERED],
        "232e1ce764237e41279eee4da269bc5e1689ae10b13e5cbae42aeeb94d6f19d4",
        "35f387e64774d4369b8ce35d092f54a61d8794689f17b5f6146bdd2b0b38245f",
        "248c5796960aea675a883d270fdb2ebdadf2fa31dbe74c6721f4328642830e60"),
    "feddropout": ([TIERED],
        "02fdd5e6c7fcc5836e79662fbd09690572d2e4a5984d08aa84bce7484128024e",
        "2f0b66beb61b2477e6cbaa34d0fe418245fea5468f1e84d9ca901836f0036c2c",
        "b668ba78bf70891df9b963d7c743ee70bde9dbec688a416604cda09be40c5639"),
    "fedsup": ([],
        "d4ba6f698f15a06567895cf6052e51d29f159c36f83f15c77bda49b2a1a1be9e",
        "36c3675b2245c655aaa81a36895ef143f50d77f247b4ddd303df44c9064d451b",
        "a56017bdb48a4a3fd15ceb1ef9a1c22f6e68b30effb1c608a376ebce62197c92"),
    "fedsup-nodistill": (["strategy.fedsup.distill=false"],
        "ef6d9ee2da30b5887b8c82a01923040600f0a30cd602bbf67084cb3587d7706f",
        "d39be9d346a26b418b1855b9e678992299ef875636dbbf94e58d1413ffa41517",
        "7afcca6f38f2eff89cf03ecd417d4fc869b6e791a9e653616f82d39a6a90e74b"),
    "efedsup": ([TIERED],
        "53fbd23301b36053948b8a6a53a8ec08c5e0a19018dcfbac98b5956b0b5b268f",
        "e04156e05c1726bdbe7b8f1d015a1e6bf348e6c78cefbc4eb16dd4f2a686cf4d",
        "1dc059a434ee57bc0cc84f8e3e3e36f0006d256ab52badd7666a9ee0b68a0c21"),
    "efedsup-fixed4-selected": ([TIERED, "strategy.efedsup.tiers=fixed4", "strategy.efedsup.merge=selected"],
        "d6f0f4f8279608896270e56ba001e8efd26b9bc8dc34b1a0e8b31bc062796f73",
        "bbf4f472b04d7b84500cacce14e8af139da3f20a6530b1553a3ea12c401354a0",
        "b340e4cec239155fe34829ad4f3154d73b363c4c81b65680015a555db1756011"),
    "fjord": ([TIERED],
        "05348ac13fe85733d79289f27492d586ef912a20d5d5e0194f3a92e9de804328",
        "ad0067eceba0cd5a77ffd26e2f415ad112e4a1824d9a3d8536a36838bccf0168",
        "b668ba78bf70891df9b963d7c743ee70bde9dbec688a416604cda09be40c5639"),
    "fjord-nodistill": ([TIERED, "strategy.fjord.distill=false"],
        "2d99e2c109f9b912610046b902b63a1b94c551a06faa614842afe2b07c49056c",
        "efe0de1f136d3d2f3daa1eea39b401a173b5f230747d56bbceb375a4edb9e8c3",
        "f2fed219003a0112b6be754380d9d68bf71c01e98404ff8b589f110e3e913fc7"),
}

# The columns the digest covers, as they were when it was recorded (new columns do not enter it).
ROUND_SCIENCE = ("bytes_down", "bytes_up", "clients", "dropped", "macs", "rejected", "round", "slice_bytes",
                 "train_loss", "virtual_time_s")
CLIENT_SCIENCE = ("arch_id", "bytes_down", "bytes_up", "client", "loss", "macs", "made_deadline", "rank", "round",
                  "samples", "sim_time_s", "weight")
EVAL_SCIENCE = ("accuracy", "round")


def overrides(label: str) -> list[str]:
    extra = GOLDEN[label][0]
    return [a for kv in [*TINY, f"strategy.name={label.split('-')[0]}", *extra] for a in ("--set", kv)]


def digest(path, tables) -> str:
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for group, columns in tables:
            for col in columns:
                h.update(np.ascontiguousarray(f[group][col][()]).tobytes())
        return h.hexdigest()


def run_golden(label: str, out) -> tuple[str, str, str]:
    """(final_model_sha256, digest of the training rows, digest of the reference evaluations)."""
    proc = run_hpcfed([*overrides(label), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        sha = str(f.attrs["final_model_sha256"])
    training = digest(out, (("rounds", ROUND_SCIENCE), ("clients", CLIENT_SCIENCE)))
    return sha, training, digest(out, (("eval", EVAL_SCIENCE),))


@pytest.mark.parametrize("label", sorted(GOLDEN))
def test_every_method_gives_its_golden_weights_and_rows(tmp_path, label):
    _, sha, training, evaluations = GOLDEN[label]
    assert run_golden(label, tmp_path / "run.h5") == (sha, training, evaluations)


if __name__ == "__main__":   # print the table anew (python tests/test_golden.py)
    import tempfile
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as folder:
        for label in GOLDEN:
            print(label, *run_golden(label, Path(folder) / f"{label}.h5"), flush=True)
