"""Deployment and imitation: ``guardrl serve``, ``guardrl rollout-sim``, ``guardrl dagger`` and ``guardrl gail``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrl.cli._common import Mode, QuietOpt, RunDirArg, app, console, err_console, fail, user_errors
from guardrl.errors import RunError


def _refuse_existing(run_dir: Path, name: str, overwrite: bool, what: str) -> None:
    """Before training: a learner's name is refused, and a policy of that name already exported into the run is
    kept unless ``--overwrite``."""
    from guardrl.run.folder import RunFolder
    from guardrl.train.config import LEARNERS, learner_kind

    if learner_kind(name) in LEARNERS:
        raise RunError(f"--name {name!r} is a learner's name; choose another name for the {what} policy")
    card = RunFolder(run_dir).card(name)
    if card.is_file() and not overwrite:
        raise RunError(f"{card} already exists; pass --overwrite to replace policy {name!r}, or choose another --name")


def client_example(run_dir: Path, url: str, key_file: Path) -> str:
    """How a client calls the server with its token, in curl and in Python (the tokens stay in the key file)."""
    return f"""# the client token, read from the key file (never printed by the server)
TOKEN=$(.venv/bin/python -c "import json; print(json.load(open('{key_file}'))['client'])")
curl -s {url}/act -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
     -d '{{"observation": [3, 4]}}'

# the same from Python (httpx)
import json, httpx
token = json.load(open("{key_file}"))["client"]
with httpx.Client(base_url="{url}", headers={{"Authorization": f"Bearer {{token}}"}}) as client:
    print(client.post("/act", json={{"observation": [3, 4]}}).json())

# outcomes and /status need the operator token, /labels the labeller token"""


def _recommended(run_dir: Path) -> str:
    """The run's recommended policy (``recommendation.json``), or a user error with the reason there is none."""
    from guardrl.run.folder import RunFolder

    folder = RunFolder(run_dir)
    rec = folder.read_json(folder.recommendation, "recommend")
    if not rec.get("policy"):
        raise RunError(f"{folder.recommendation}: no policy is recommended ({rec.get('reason')}); name one with "
                       "--policy NAME to serve it anyway (a FAILed one only in shadow mode)")  # fmt: skip
    return str(rec["policy"])


@app.command("serve")
def serve_cmd(
    run_dir: RunDirArg,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="Exported policy to serve (repeat for several; first is default); default: the run's "
            "recommendation (guardrl recommend)."
        ),
    ] = None,
    mode: Annotated[
        Mode, typer.Option(help="Who decides: shadow (nobody but the fallback), canary or full.")
    ] = Mode.canary,
    fallback: Annotated[
        str | None, typer.Option(help="An exported policy that answers fallback decisions (else action null).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    audit_log: Annotated[
        Path | None, typer.Option(help="JSON-lines audit log, a hash chain (default RUN/serve/audit.jsonl).")
    ] = None,
    allow_gate_fail: Annotated[
        bool, typer.Option(help="Let a policy the gate FAILed, or never judged, decide in canary or full mode.")
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="Role tokens (JSON, mode 0600), made on first start (default RUN/serve/keys.json); "
            "delete it to rotate. GUARDRL_{CLIENT,OPERATOR,LABELLER}_TOKEN override it."
        ),
    ] = None,  # fmt: skip
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No tokens: anyone who reaches the port may call (loopback only).")
    ] = False,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM): serve HTTPS.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM), with --ssl-certfile.")] = None,
    accept_log_from: Annotated[
        int | None,
        typer.Option(
            help="The audit log's hash chain breaks at this line: keep the lines before it, set the "
            "rest aside in a .rejected file, and start."
        ),
    ] = None,  # fmt: skip
    print_client_example: Annotated[
        bool,
        typer.Option("--print-client-example", help="Print how a client calls the server (curl, httpx), and exit."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Serve exported policies over HTTP(S) with role tokens, deferral, shadow mode, canary routing and rollback."""
    from guardrl.run.folder import RunFolder

    scheme = "https" if ssl_certfile else "http"
    url = f"{scheme}://{host}:{port}"
    keys = key_file or RunFolder(run_dir).serve_keys
    if print_client_example:
        console.print(client_example(run_dir, url, keys), markup=False, highlight=False)
        return
    try:
        import uvicorn

        from guardrl.serve.app import create_app
        from guardrl.serve.auth import Authenticator, is_loopback, load_tokens
        from guardrl.serve.service import PolicyService
    except ImportError as exc:
        fail(RunError(f"serving needs the serve extra: pip install 'guardrl[serve]' ({exc})"))
        return
    with user_errors():
        policy = policy or [_recommended(run_dir)]
        if no_auth and not is_loopback(host):
            raise RunError(
                f"--no-auth on {host}: anyone who can reach it could act, report hazards and post labels; "
                "serve without tokens only on a loopback address (127.0.0.1), or drop --no-auth"
            )
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise RunError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
        for tls in (ssl_certfile, ssl_keyfile):
            if tls is not None and not tls.is_file():
                raise RunError(f"{tls}: no such file")
        tokens, source = (None, "") if no_auth else load_tokens(keys)
        service = PolicyService(
            run_dir, policy, mode=mode.value, fallback=fallback, audit_log=audit_log,
            allow_gate_fail=allow_gate_fail, accept_log_from=accept_log_from,
        )  # fmt: skip
    if service.set_aside is not None:
        err_console.print(f"audit log: kept the verified lines before {accept_log_from}; the rest is in "
                          f"{service.set_aside}", markup=False)  # fmt: skip
    if no_auth:
        err_console.print("warning: --no-auth: every request is accepted without a token (loopback only)", markup=False)
    status = service.status()
    gates = ", ".join(f"{n} {p['gate']}" for n, p in status["policies"].items())
    console.print(
        f"serving {', '.join(policy)} from {run_dir} in {status['mode']} mode on {url} "
        f"(gate: {gates}); audit log {service.audit_path}"
    )
    if not no_auth:
        console.print(f"role tokens (client, operator, labeller) from {source}; `guardrl serve {run_dir} "
                      "--print-client-example` shows how to call")  # fmt: skip
    try:
        uvicorn.run(create_app(service, auth=Authenticator(tokens)), host=host, port=port, log_level="warning",
                    access_log=False, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)  # fmt: skip
    finally:
        service.close()


@app.command("rollout-sim")
def rollout_sim_cmd(
    run_dir: RunDirArg,
    policy: Annotated[str, typer.Option(help="The exported policy to roll out.")] = "cql",
    shadow: Annotated[int, typer.Option(help="Shadow-phase episodes.")] = 500,
    canary: Annotated[int, typer.Option(help="Canary-phase episodes.")] = 1000,
    full: Annotated[int, typer.Option(help="Full-phase episodes.")] = 2000,
    chunk: Annotated[int, typer.Option(help="Episodes between two rollback checks.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the simulated episodes.")] = 7000,
    quiet: QuietOpt = False,
) -> None:
    """Replay shadow -> canary -> full on SafeGrid; hazard events with and without deferral and rollback."""
    from guardrl.run import RunFolder
    from guardrl.serve.rollout_sim import RolloutSimConfig, markdown, run_rollout_sim

    with user_errors():
        cfg = RolloutSimConfig(shadow_episodes=shadow, canary_episodes=canary, full_episodes=full, chunk=chunk,
                               seed=seed)  # fmt: skip
        result = run_rollout_sim(run_dir, policy, cfg, show_progress=not quiet)
    if not quiet:
        console.print(markdown(result, policy), markup=False, highlight=False)
    console.print(f"written: {RunFolder(run_dir).rollout_sim(policy, '.json')}")


@app.command("dagger")
def dagger_cmd(
    run_dir: RunDirArg,
    expert: Annotated[
        str, typer.Option(help="Who labels: 'optimal' (SafeGrid's exact planner) or package.module:function.")
    ] = "optimal",
    iterations: Annotated[int, typer.Option(help="Rounds of roll out -> label -> retrain.")] = 5,
    labels: Annotated[int, typer.Option(help="Expert labels per round (the budget is rounds x labels).")] = 100,
    episodes: Annotated[int, typer.Option(help="Episodes the learner plays per round.")] = 50,
    beta_decay: Annotated[float, typer.Option(help="beta_i = beta_decay**i: the expert's share of round i.")] = 0.5,
    validation: Annotated[
        int, typer.Option(help="Episodes each round's learner plays alone to pick the best round (0: the last).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the rollouts, the queries and the training.")] = 0,
    from_labels: Annotated[
        bool, typer.Option(help="Train on the labels people posted to the server (POST /labels), not a simulator.")
    ] = False,
    audit_log: Annotated[
        Path | None, typer.Option(help="The server's audit log holding the labels (default RUN/serve/audit.jsonl).")
    ] = None,
    name: Annotated[str, typer.Option(help="Name of the exported policy.")] = "dagger",
    overwrite: Annotated[bool, typer.Option(help="Replace a policy of the same name exported earlier.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """DAgger: BC retrained on the run's logs plus an expert's labels of the states the learner visits."""
    from guardrl.run import RunContext, RunFolder
    from guardrl.run.dagger import DaggerConfig, dagger_in_run, labels_in_run

    with user_errors():
        _refuse_existing(run_dir, name, overwrite, "DAgger")
        ctx = RunContext.open(RunFolder(run_dir))
        if from_labels:
            from guardrl.serve.labels import read_labels

            log = audit_log or RunFolder(run_dir).serve_log
            found = read_labels(log, ctx.dataset.obs_dim, ctx.dataset.n_actions)
            record = labels_in_run(ctx, found.observations, found.actions, source=str(log), name=name,
                                   tokens=found.tokens, ignored=found.ignored)  # fmt: skip
            by = ", ".join(f"{n} from token {t}" for t, n in record["labels_by_token"].items())
            left = f"; ignored {found.ignored} not posted with a labeller token" if found.ignored else ""
            console.print(f"trained {name} on the logs plus {record['labels']} labels from {log} ({by}{left})")
        else:
            cfg = DaggerConfig(iterations=iterations, labels_per_iteration=labels, episodes_per_iteration=episodes,
                               beta_decay=beta_decay, validation_episodes=validation, seed=seed)  # fmt: skip
            record = dagger_in_run(ctx, cfg, expert, name=name, show_progress=not quiet)
            for r in record["rounds"] if not quiet else []:
                e = r["exact"]
                console.print(f"round {r['round']}: {r['labels']} labels, exact normalized score "
                              f"{e['normalized_score']:.1f}, hazard {e['hazard_prob']:.2%}")  # fmt: skip
        if "exact" in record:
            e = record["exact"]
            console.print(f"exact: normalized score {e['normalized_score']:.1f}, hazard {e['hazard_prob']:.2%}")
    console.print(f"exported: {RunFolder(run_dir).card(name)}  (serve it with --policy {name} --mode shadow)")


@app.command("gail")
def gail_cmd(
    run_dir: RunDirArg,
    demos: Annotated[
        Path | None, typer.Option(help="Dataset folder of demonstrations (default: the run's own logs).")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Rounds of roll out -> discriminator -> PPO.")] = 80,
    episodes: Annotated[int, typer.Option(help="Episodes the policy plays per round.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the networks and the rollouts.")] = 0,
    name: Annotated[str, typer.Option(help="Name of the exported policy.")] = "gail",
    overwrite: Annotated[bool, typer.Option(help="Replace a policy of the same name exported earlier.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """GAIL: imitate demonstrations in SafeGrid's simulator without reading a reward; exported into the run."""
    from guardrl.run import RunContext, RunFolder
    from guardrl.run.gail import gail_in_run
    from guardrl.train.gail import GAILConfig

    with user_errors():
        _refuse_existing(run_dir, name, overwrite, "GAIL")
        ctx = RunContext.open(RunFolder(run_dir))
        cfg = GAILConfig(iterations=iterations, episodes_per_iteration=episodes, seed=seed)
        record = gail_in_run(ctx, cfg, demos, name=name, show_progress=not quiet)
    e = record["exact"]
    console.print(f"exact: return {e['expected_return']:.2f} (demonstrations' mean logged return "
                  f"{record['demonstration_mean_return']:.2f}), normalized score {e['normalized_score']:.1f}, "
                  f"hazard {e['hazard_prob']:.2%}")  # fmt: skip
    console.print(f"exported: {RunFolder(run_dir).card(name)}  (serve it with --policy {name} --mode shadow)")
