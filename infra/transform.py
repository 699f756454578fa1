#!/usr/bin/env python3
"""Turn infra/template.yaml into plain CloudFormation, offline, as `sam package` + the SAM
transform would: every function's CodeUri becomes `s3://<bucket>/<prefix><binary>.zip` and the
AWS::Serverless-2016-10-31 transform is run locally by `aws-sam-translator` (the library the
SAM transform itself is built on). For emulators that do not run the transform (moto), and for
LocalStack without the SAM CLI (localstack/deploy-template.sh).

    python infra/transform.py --bucket B [--prefix P] [--region R] [--template T]
                              [--architecture x86_64|arm64] > out.json

Needs `cfn-lint` (to read the template's short-form tags such as !Ref) and `aws-sam-translator`,
both pinned in scripts/requirements-test.txt.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template.yaml"
#: Lambda's two architectures.
ARCHITECTURES = ("x86_64", "arm64")


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain dicts and lists (short-form tags become {"Ref": ..} etc.)."""
    from cfnlint.decode import decode

    template, matches = decode(str(path))
    if matches or template is None:
        raise ValueError(f"{path}: {[str(m) for m in matches]}")
    return json.loads(json.dumps(template))  # drop cfn-lint's node types


def binaries(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> binary name, for every function that cargo-lambda builds."""
    out = {}
    for lid, res in template["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        meta = res.get("Metadata", {})
        if meta.get("BuildMethod") == "rust-cargolambda":
            out[lid] = meta["BuildProperties"]["Binary"]
    return out


def packaged(
    template: dict[str, Any], bucket: str, prefix: str = "", architecture: str | None = None
) -> dict[str, Any]:
    """A copy with each function's CodeUri pointing at `s3://bucket/<prefix><binary>.zip`.

    `architecture` (`x86_64` or `arm64`) replaces the functions' `Architectures`: an emulator
    that runs `provided.al2023` binaries on its own host (MiniStack, LocalStack with
    LAMBDA_IGNORE_ARCHITECTURE) needs the host's. AWS gets the template's (arm64)."""
    t = copy.deepcopy(template)
    t.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    if architecture is not None:
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
        t.setdefault("Globals", {}).setdefault("Function", {})["Architectures"] = [architecture]
        for lid in binaries(t):
            t["Resources"][lid]["Properties"].pop("Architectures", None)
    for lid, binary in binaries(t).items():
        t["Resources"][lid]["Properties"]["CodeUri"] = f"s3://{bucket}/{prefix}{binary}.zip"
    return t


def transform(
    template: dict[str, Any],
    region: str = "us-east-1",
    account: str = "123456789012",
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The SAM transform of an already packaged template."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name=region)
    values = {"AWS::Region": region, "AWS::AccountId": account}
    values.update(parameters or {})
    translator = Translator(None, Parser(), boto_session=session)
    return translator.translate(
        copy.deepcopy(template),
        parameter_values=values,
        get_managed_policy_map=lambda: {},
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=TEMPLATE)
    p.add_argument("--bucket", required=True, help="bucket holding <binary>.zip for each function")
    p.add_argument("--prefix", default="", help="key prefix of the zips")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        help="replace the functions' architecture (an emulator that runs them on its host)",
    )
    a = p.parse_args(argv)
    t = packaged(load(a.template), a.bucket, a.prefix, a.architecture)
    out = transform(t, a.region, a.account)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
