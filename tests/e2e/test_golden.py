"""Golden results: refactors of the round must keep every method's numbers bit for bit.

Each job is a small real run (``python -m hpcfed.run``). Its ``final_model_sha256`` and the digest of
its training rows (every rounds/clients column that does not depend on the machine) were recorded
from commit 28797d7, before the round became explicit values (issue 10), and have not moved since.
The digest of its reference evaluations (eval/round, eval/accuracy) was recorded anew when
evaluation began to calibrate BatchNorm statistics on training samples instead of taking them from
each test batch (issue 11): with ``model.norm: bn`` the reported accuracies moved, the training did
not. A change that moves any of them changes what a method computes; if that is intended, say so
and record anew with ``python tests/e2e/test_golden.py`` (prints the table for this machine's CPU
capability; the values differ between CPUs, see ``GOLDEN``).
"""
from __future__ import annotations

import hashlib
import sys

import h5py
import numpy as np
import pytest
import torch

from tests.launch import run_hpcfed

TINY = ["rounds=3", "clients.total=12", "clients.per_round=4", "train.local_epochs=1", "eval.every=3",
        "model.widths=[8,16]", "model.stem=8", "model.width_choices=[0.5,1.0]"]
TIERED = "devices.memory_mb=[0.2,1.0]"   # the tiny space's tiers need 0.30 and 0.66 MiB: both tiers occur

# label: the overrides of the tiny job
OVERRIDES = {
    "superfed": [],
    "superfed-uniform-random": ["strategy.superfed.weighting=uniform", "strategy.superfed.distribution=random",
                                "strategy.superfed.sample_weighted=true"],
    "superfed-deadline": [TIERED, "clients.deadline_s=2.0", "clients.overselect=0.5"],
    "superfed-mobilenet": ["model.space=mobilenet", "model.kernel_choices=[3,5]"],
    "superfed-faults": ["faults.nan_at=[[3,1],[5,1],[7,1],[9,1]]"],
    "fedavg": [TIERED],
    "fedavg-smallest-batched": ["strategy.fedavg.arch=smallest", "train.batch_clients=3"],
    "fedavg-synthetic": ["data.name=synthetic", "data.partition=natural"],
    "ifedavg-largest": [TIERED, "strategy.ifedavg.archs=[largest]"],
    "heterofl": [TIERED],
    "heterofl-batched": [TIERED, "train.batch_clients=2"],
    "fedrolex": [TIERED],
    "feddropout": [TIERED],
    "fedsup": [],
    "fedsup-nodistill": ["strategy.fedsup.distill=false"],
    "efedsup": [TIERED],
    "efedsup-fixed4-selected": [TIERED, "strategy.efedsup.tiers=fixed4", "strategy.efedsup.merge=selected"],
    "fjord": [TIERED],
    "fjord-nodistill": [TIERED, "strategy.fjord.distill=false"],
}

# Floating-point kernels differ between CPUs (oneDNN and MKL pick them by instruction set), so the
# values are recorded per CPU capability as torch reports it: label -> (final_model_sha256, digest of
# the training rows, digest of the reference evaluations).
GOLDEN = {
    # an Intel Xeon with AVX-512 (the machine of issues 10-19)
    "AVX512": {
        "superfed": ("f8269874d24b6456cd117d29dd100788dbedc476802ef24ae563f8296b3e2191",
            "32f3853b333d03ba1abe4d1bd7839e9587054af99eaea1b05fb3661841036f25",
            "60fd95b7566ff2f3e44525aad454a8d8cbe0fc6bc5e98181a75a324a470ce678"),
        "superfed-uniform-random": ("d69cf73c44a4a06444f755282b2b2c8cd5b676f8fb5b27df945c6617a3efec43",
            "200231847d4e0566719ff7137597383356f2cc06861be755db585f51a1db1ce7",
            "7485ce83be552d0bd73a9f9aed2f1bd45094cf21587adb71db271cb6aad21619"),
        "superfed-deadline": ("79ac722d4e84a30d8fd9d76f9abc0e7cc5639626a52f2769d7ff9740764b600a",
            "e7779334c67e490f540cd123634ec64c79a8b7c282b2ec6ab26d622e1ddcba7a",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "superfed-mobilenet": ("14569f7a764783ddb687d11c9b1253d4358e4cd798c4b4c1ee74648fd59f7757",
            "8be9998138deb858e9142d15f3b7e687c761c19ba5b357315006d406993f7ef1",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "superfed-faults": ("c4922c53457731f90256401178a3205211f1ed8bf9c5a84e48b650de082d0702",
            "7a46b9acbf427587bd6959ef97e01c8b88a169bf8b13398b954cf14039dd3143",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "fedavg": ("335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
            "3b45fcbb20ed15e59df11e064485310f771cdf893538b7a34e67393f4777d873",
            "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
        "fedavg-smallest-batched": ("eba57a0e1165821bd8de0a4ad59944c9b5abca6fe9bf0a64368b7c70ea8b8006",
            "61d5a24bd15818b73bff0c019172c3a3e98a2f21c8dc321ceafd66e9a611421c",
            "a143394b8811cd9b80601a46fa3f79a637d6a81e4c86aeb9ffca791e6ae77801"),
        "fedavg-synthetic": ("cb9a5c5b56fcb0002016d7dc802815537698a22333aaedc3fed6e92ebdfddb53",
            "88bc0dbb6c34b15f57ca187fb5e48676d04314e3b34c08397aee76e63f574de9",
            "322abcc31349c35d2e0de9f4d5bf9f31df602305b10bea6b7bc4a9f970da01af"),
        "ifedavg-largest": ("335d70d7391d4e577b3f1fe426f8b0fade58f7531220fdea5cd34784f58db246",
            "3b45fcbb20ed15e59df11e064485310f771cdf893538b7a34e67393f4777d873",
            "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
        "heterofl": ("dfb801a0ca581a2f6a37df4560f396dbd1efe01f5ea92651f078cca3e61ac44c",
            "5f39093beba067dc5da7387cf0a03ba9f7100bfb5e0056f37e980bd7c33bcc1c",
            "be6117e1484949063abce590cc3661a84145d3f677686c16ea437735fe84db2a"),
        "heterofl-batched": ("2cec20e69c15f98a6815da552c8106d50aa8730898b5b847226402db1bbb14e0",
            "fd14725f7003557252571b41b2b91c8ad9a32b6a0f8746bb5d72c55e096e1166",
            "2fb7d7d25e335dad9c55f9174e2c9488cbd9a88042417b0c2cbf93755f1af01f"),
        "fedrolex": ("232e1ce764237e41279eee4da269bc5e1689ae10b13e5cbae42aeeb94d6f19d4",
            "35f387e64774d4369b8ce35d092f54a61d8794689f17b5f6146bdd2b0b38245f",
            "248c5796960aea675a883d270fdb2ebdadf2fa31dbe74c6721f4328642830e60"),
        "feddropout": ("02fdd5e6c7fcc5836e79662fbd09690572d2e4a5984d08aa84bce7484128024e",
            "2f0b66beb61b2477e6cbaa34d0fe418245fea5468f1e84d9ca901836f0036c2c",
            "b668ba78bf70891df9b963d7c743ee70bde9dbec688a416604cda09be40c5639"),
        "fedsup": ("d4ba6f698f15a06567895cf6052e51d29f159c36f83f15c77bda49b2a1a1be9e",
            "36c3675b2245c655aaa81a36895ef143f50d77f247b4ddd303df44c9064d451b",
            "a56017bdb48a4a3fd15ceb1ef9a1c22f6e68b30effb1c608a376ebce62197c92"),
        "fedsup-nodistill": ("ef6d9ee2da30b5887b8c82a01923040600f0a30cd602bbf67084cb3587d7706f",
            "d39be9d346a26b418b1855b9e678992299ef875636dbbf94e58d1413ffa41517",
            "7afcca6f38f2eff89cf03ecd417d4fc869b6e791a9e653616f82d39a6a90e74b"),
        "efedsup": ("53fbd23301b36053948b8a6a53a8ec08c5e0a19018dcfbac98b5956b0b5b268f",
            "e04156e05c1726bdbe7b8f1d015a1e6bf348e6c78cefbc4eb16dd4f2a686cf4d",
            "1dc059a434ee57bc0cc84f8e3e3e36f0006d256ab52badd7666a9ee0b68a0c21"),
        "efedsup-fixed4-selected": ("d6f0f4f8279608896270e56ba001e8efd26b9bc8dc34b1a0e8b31bc062796f73",
            "bbf4f472b04d7b84500cacce14e8af139da3f20a6530b1553a3ea12c401354a0",
            "b340e4cec239155fe34829ad4f3154d73b363c4c81b65680015a555db1756011"),
        "fjord": ("05348ac13fe85733d79289f27492d586ef912a20d5d5e0194f3a92e9de804328",
            "ad0067eceba0cd5a77ffd26e2f415ad112e4a1824d9a3d8536a36838bccf0168",
            "b668ba78bf70891df9b963d7c743ee70bde9dbec688a416604cda09be40c5639"),
        "fjord-nodistill": ("2d99e2c109f9b912610046b902b63a1b94c551a06faa614842afe2b07c49056c",
            "efe0de1f136d3d2f3daa1eea39b401a173b5f230747d56bbceb375a4edb9e8c3",
            "f2fed219003a0112b6be754380d9d68bf71c01e98404ff8b589f110e3e913fc7"),
    },
    # an AMD EPYC with AVX2, recorded from 09d3b80 (the commit before issue 20"s move into folders)
    "AVX2": {
        "superfed": ("e5ad049c8cf4bb21ff244ffd2708c59f46640fa3ee921c504baf4e96da54c57e",
            "b699d369f0b223e1ad301d05ee66b06037fa8ac1a591aaf78e00fe995057bddd",
            "60fd95b7566ff2f3e44525aad454a8d8cbe0fc6bc5e98181a75a324a470ce678"),
        "superfed-uniform-random": ("4fdfd79b9dd8c36c0755b823ca6257e2989a313807f72ed228443013f963aa78",
            "ba3fec9a81668a38218639e95d783a25c6cf860901c3756a9afce3115a76a193",
            "f942eeabd924ad1eb8b97aa0d7efcfd427132e203c6a0a99f0e70acb98023c13"),
        "superfed-deadline": ("fca8353f5a04ad9b66f4dd5331dfe51fd15f3cf6893e3a59d21fbabaff101b51",
            "28f30021275e5b73fa6368672936cb58f5618bd70ada64dc49c303122eb47e64",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "superfed-mobilenet": ("accbce52466c644799b8809ab1159cd1c403b397e495904c78e5939d8cc3a25e",
            "9aa7a0c5a7988175e52b3952394109c23c88a91e9dfca789c8b0461861638d0b",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "superfed-faults": ("b7fb00501bd3c96c949c13d05b1a7edb79173d288cb07ba700ca5944a2110508",
            "fe5f51be38db3eccba1e69e9251548c395fab7122558da80d9a0e5b4950354d2",
            "c37bfbdcf25d3bf823d064f4108620204e63af78214af8fb585668819eeeec6c"),
        "fedavg": ("c6958d6bad6b2729e53b54888fa7b73a2fb02b9079aa979300592ef1c211e2d0",
            "bf916751e2fdc30639e9d8156a8df3d61ef33bb6bbfb74e4856c9ae5b78d7b8a",
            "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
        "fedavg-smallest-batched": ("b4dfe943c6ea5541a85707a70c120a68744e4ca9ff50e1e352a47ba06237ac04",
            "200d665ae2dffd77fecaac6117a1c962eff8b221e9df8267f50b7c9831fb68fe",
            "a143394b8811cd9b80601a46fa3f79a637d6a81e4c86aeb9ffca791e6ae77801"),
        "fedavg-synthetic": ("68be520cf972eb5682e1ae9d482f8eb3e2d01a020285cbea54e8728de612ebbd",
            "0c6f7a659603dac5de64f0b7774229cc28548f26d281f3adea15f12cfff89c9a",
            "322abcc31349c35d2e0de9f4d5bf9f31df602305b10bea6b7bc4a9f970da01af"),
        "ifedavg-largest": ("c6958d6bad6b2729e53b54888fa7b73a2fb02b9079aa979300592ef1c211e2d0",
            "bf916751e2fdc30639e9d8156a8df3d61ef33bb6bbfb74e4856c9ae5b78d7b8a",
            "ba5ecda23e5a466b35ee243fb7a65b53c78f67010c057c5f6423936d5cb214ce"),
        "heterofl": ("38d94ae63af2fd876eff8c7b4cd74b257d0f4a487509d016152c32c6a85815cc",
            "ad822e33e9ab8b73232ba2979430c6e33d00834105e8aa4c7e595def43353a0b",
            "8f27f5db96683709f34dd071924ab3642a82c7950dc1b8ef2573a3faad16a307"),
        "heterofl-batched": ("74e05020d9d8627ab49a091e2722d0cea5d0bd2e49b4ab140bc5f115bd0dd69a",
            "225fa35b4d07b11ce32ca4eb97594183cf6895234ce7644e258b0aeb42dc0457",
            "be6117e1484949063abce590cc3661a84145d3f677686c16ea437735fe84db2a"),
        "fedrolex": ("c906d30b4ac919ffe009abe663ffa6d5fdf14b63b53deff48cdb37ac36749c13",
            "fb4b09e4c3e3609df08114255f654668084a9c05a5adada10889be457288f54c",
            "105337640c211177d230f557f2310d7ec1751eeae0cfe03bd9a9e003801f1ee8"),
        "feddropout": ("c956b6e616fbc44f92cae1ad74d6f3965266b5784bd4c8f2fdcbd4f37bbd0f20",
            "15588637441a7d0599f26883f0e7079997cb45cd98ba82c81e125f34845745c5",
            "b668ba78bf70891df9b963d7c743ee70bde9dbec688a416604cda09be40c5639"),
        "fedsup": ("c601e11a118e58dc7632601f08a0bc3ba33024527b4d5b44d7ce6cfef26f30eb",
            "e289db77639c052f384c52a8d0e2443905733567da512e3e46d4a4e6ca361bce",
            "5efad5c03719f7299923f193363172dd90c553163d09d34869c7762408ade945"),
        "fedsup-nodistill": ("1066ac1fcd8a67257349ac216a3c91a425c9b944c8ac32d7eee64425df6e67a6",
            "2220a460f5b92b6225bf9fbc6bec86853a8288f10d139b66223035968dd94049",
            "56d5a23a4caeccfcaeaf4452494618b0466e89c168f921cf6c44dc42a326f77f"),
        "efedsup": ("fd5e99f5e981b2d844c27c32c30143ab5b57667766a8737fd28ae6d2cc372d88",
            "0d09326f65580cb4f94046f0c3527e206368cc16501f32a88ca694ef5bfcce1d",
            "1dc059a434ee57bc0cc84f8e3e3e36f0006d256ab52badd7666a9ee0b68a0c21"),
        "efedsup-fixed4-selected": ("dd80a19e5a840de230ac5725d315852bde670e5a969cc5b32b88b40e9defc4cc",
            "87c9066645dc26ac817e744289cd223c8d7ba624b417f3273056468520498530",
            "b340e4cec239155fe34829ad4f3154d73b363c4c81b65680015a555db1756011"),
        "fjord": ("a0edcb7c970150ef36cfd360ba15c16ed6ddc69d262227f135522d959fcd35f5",
            "30467855d9e4596b68c6e00406b45435f4d52bef6dc4f73dd91fdc6da0e94e0f",
            "2fb7d7d25e335dad9c55f9174e2c9488cbd9a88042417b0c2cbf93755f1af01f"),
        "fjord-nodistill": ("062850bdd2164f56a2cabe2daaace64eb7beb040f01d0150a5d40ae7508e7e69",
            "84539921717b3090a7da5e78dc2a2360cd8412598d289ff4621f0f8b80b61851",
            "a44c354799e004e1c85fc9a01f7f4dd5351562bc7522e4fa18a8d82909ca3f37"),
    },
}
CAPABILITY = torch.backends.cpu.get_cpu_capability()   # DEFAULT | AVX2 | AVX512 (the kernels torch uses here)

# The columns the digest covers, as they were when it was recorded (new columns do not enter it).
ROUND_SCIENCE = ("bytes_down", "bytes_up", "clients", "dropped", "macs", "rejected", "round", "slice_bytes",
                 "train_loss", "virtual_time_s")
CLIENT_SCIENCE = ("arch_id", "bytes_down", "bytes_up", "client", "loss", "macs", "made_deadline", "rank", "round",
                  "samples", "sim_time_s", "weight")
EVAL_SCIENCE = ("accuracy", "round")


def overrides(label: str) -> list[str]:
    extra = OVERRIDES[label]
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


@pytest.mark.parametrize("label", sorted(OVERRIDES))
def test_every_method_gives_its_golden_weights_and_rows(tmp_path, label):
    if CAPABILITY not in GOLDEN:
        pytest.skip(f"no golden values recorded for CPU capability {CAPABILITY} (recorded: {', '.join(GOLDEN)}); "
                    f"record them from a commit known to be right with python tests/e2e/test_golden.py")
    assert run_golden(label, tmp_path / "run.h5") == GOLDEN[CAPABILITY][label]


if __name__ == "__main__":   # print the table anew (python tests/e2e/test_golden.py)
    import tempfile
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    with tempfile.TemporaryDirectory() as folder:
        print(f"CPU capability {CAPABILITY}")
        for label in OVERRIDES:
            print(label, *run_golden(label, Path(folder) / f"{label}.h5"), flush=True)
