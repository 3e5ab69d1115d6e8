"""What the notebooks compute, on synthetic rows: presets, the Pareto front, speedups, the
CPU/GPU crossover, the claim verdicts, and every plot (with units and a caption)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from workbench import study
from workbench.analysis.recommend import readable
from workbench.errors import UserError
from workbench.profiles import get_profile
from workbench.registry import get_task
from workbench.report import plots
from workbench.results import make_row
from workbench.study import claims, sections


def _row(**fields) -> dict:
    base = {
        "status": "ok",
        "task": "tabular",
        "model": "mlp",
        "source_framework": "torch",
        "format": "onnx",
        "precision": "fp32",
        "runtime": "onnxruntime",
        "device": "cpu",
        "threads": 2,
        "batch_size": 1,
        "latency_ms_p50": 1.0,
        "throughput_items_per_s": 1000.0,
        "model_size_bytes": 4_000_000,
        "peak_rss_bytes": 200 * 2**20,
        "latencies_ms": [0.9, 1.0, 1.1, 1.3],
        "run_id": "r1",
        "timestamp": "2026-01-02T03:04:05+00:00",
    }
    base.update(fields)
    return make_row(**base)


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_sweep_for_uses_presets_and_explicit_values_win() -> None:
    sweep = study.sweep_for("tabular", "ci")
    assert sweep.models == ["mlp"] and sweep.formats == ["eager", "onnx"]
    assert sweep.rule == get_profile("ci").rule
    sweep = study.sweep_for("tabular", "ci", batch_sizes=[3], formats=["onnx"])
    assert sweep.batch_sizes == [3] and sweep.formats == ["onnx"]
    with pytest.raises(UserError, match="profile must be one of"):
        study.sweep_for("tabular", "huge")


def test_generic_presets_for_a_task_without_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newly registered task's notebook runs before anyone tunes presets for it."""
    task = get_task("image_classification")
    monkeypatch.setattr(type(task), "presets", {})
    chosen = task.preset("ci")
    assert chosen.models == ("resnet50",) and chosen.frameworks == ("torch",)
    assert chosen.formats == ("onnx",) and chosen.precisions == ("fp32",)
    assert task.preset("full").devices == ("cpu", "cuda")


def test_pareto_marks_non_dominated_artifacts() -> None:
    frame = _frame(
        [
            _row(precision="fp32", latency_ms_p50=1.0, model_size_bytes=4e6, accuracy=0.90),
            _row(precision="int8-static", latency_ms_p50=0.5, model_size_bytes=1e6, accuracy=0.89),
            _row(precision="fp16", latency_ms_p50=1.2, model_size_bytes=2e6, accuracy=0.88),
            _row(precision="int8-dynamic", latency_ms_p50=0.6, model_size_bytes=1e6, accuracy=0.80),
        ]
    )
    front = study.pareto(frame).set_index("precision")["on_front"].to_dict()
    assert front == {"fp32": True, "int8-static": True, "fp16": False, "int8-dynamic": False}
    assert study.quality_column(frame) == "accuracy"


def test_speedup_over_fp32_pairs_the_same_configuration() -> None:
    frame = _frame(
        [
            _row(precision="fp32", latency_ms_p50=2.0, model_size_bytes=4e6),
            _row(precision="int8-dynamic", latency_ms_p50=0.5, model_size_bytes=1e6),
            _row(precision="int8-dynamic", latency_ms_p50=0.5, batch_size=8),  # no fp32 twin
        ]
    )
    table = study.speedup_over_fp32(frame)
    int8 = table[table["precision"] == "int8-dynamic"].iloc[0]
    assert len(table) == 2 and int8["speedup"] == 4.0 and int8["size_ratio"] == 4.0


def test_crossover_without_and_with_a_gpu() -> None:
    cpu = [_row(batch_size=b, throughput_items_per_s=100.0 * b**0.5) for b in (1, 8, 64)]
    no_gpu = cpu + [
        _row(batch_size=1, device="cuda", status="unavailable", error="no GPU on this host (x)")
    ]
    table, reading = study.crossover(_frame(no_gpu))
    assert table.empty and reading.startswith("No GPU measurement here: no GPU on this host (x)")
    gpu = [_row(batch_size=b, device="cuda:0", throughput_items_per_s=50.0 * b) for b in (1, 8, 64)]
    table, reading = study.crossover(_frame(cpu + gpu))
    assert table.iloc[0]["GPU faster from batch"] == 8
    assert "from batch 8" in reading


def test_claim_verdict_rules() -> None:
    assert claims.ratio_verdict(3.5, 3, 5, 0.25)[0] == claims.CONFIRMED
    assert claims.ratio_verdict(7.5, 3, 5, 0.25)[0] == claims.REFUTED
    assert "above" in claims.ratio_verdict(7.5, 3, 5, 0.25)[1]
    assert claims.ratio_verdict(None, 3, 5, 0.25)[0] == claims.NOT_MEASURABLE
    assert claims.abs_verdict(600, 500, "ms", 0.5)[0] == claims.CONFIRMED
    assert claims.abs_verdict(2500, 500, "ms", 0.5)[0] == claims.REFUTED


def test_judge_says_why_gpu_claims_cannot_be_measured() -> None:
    cnn = _frame(
        [
            _row(model="resnet50", batch_size=1, latency_ms_p50=100, throughput_items_per_s=10),
            _row(model="resnet50", batch_size=32, latency_ms_p50=2000, throughput_items_per_s=16),
            _row(
                model="resnet50",
                batch_size=32,
                device="cuda",
                status="unavailable",
                error="no GPU on this host (no NVIDIA driver)",
            ),
        ]
    )
    prec = _frame(
        [
            _row(model="resnet50", precision="fp16", latency_ms_p50=150, model_size_bytes=2e6),
            _row(
                model="resnet50",
                precision="int8-dynamic",
                latency_ms_p50=30,
                model_size_bytes=1e6,
                parity_metric_value=0.99,
            ),
        ]
    )
    keras = _frame(
        [
            _row(
                source_framework="keras",
                format="savedmodel",
                latency_ms_p50=0.4,
                model_size_bytes=8e5,
            ),
            _row(
                source_framework="keras", format="tflite", latency_ms_p50=0.1, model_size_bytes=2e5
            ),
        ]
    )
    small = _frame(
        [
            _row(format="eager", runtime="torch", latency_ms_p50=0.1),
            _row(format="onnx", latency_ms_p50=0.015, throughput_items_per_s=60000),
            _row(format="onnx", batch_size=64, throughput_items_per_s=240000),
        ]
    )
    null = _frame([_row(model="null", runtime="null", latency_ms_p50=0.0001)])
    verdicts = claims.judge(
        {"cnn": cnn, "cnn_precisions": prec, "keras": keras, "small": small, "null": null}, "ci"
    )
    by = {(r.section, r.claim): r for r in verdicts.itertuples()}
    gpu = [r for (s, c), r in by.items() if s == "2.3" and "GPU" in c]
    assert gpu and all(r.verdict == claims.NOT_MEASURABLE for r in gpu)
    assert all("no GPU on this host" in r.why for r in gpu)
    assert by[("3.2", "Keras mlp (tabular): size")].verdict == claims.CONFIRMED  # 4x
    # 100 -> 30 ms = 3.3x would confirm the claim, but ci measured dynamic INT8 and the
    # claim is about static INT8: shown, not judged
    int8 = by[("9.1", "resnet50 int8-dynamic vs fp32, batch 1, CPU: latency")]
    assert int8.verdict == claims.NOT_IN_PROFILE and "(3.33x;" in int8.measured
    assert "the ci profile measured int8-dynamic, not the claim's int8-static" in int8.why
    one_one = [r for (s, _), r in by.items() if s == "1.1"][0]
    assert one_one.verdict == claims.CONFIRMED and "6.7x" in one_one.measured
    assert set(verdicts["verdict"]) <= {
        claims.CONFIRMED,
        claims.REFUTED,
        claims.NOT_MEASURABLE,
        claims.NOT_IN_PROFILE,
    }


def test_every_plot_renders_with_units_and_caption() -> None:
    rows = [
        _row(
            precision=p,
            batch_size=b,
            latency_ms_p50=lat * b,
            accuracy=acc,
            throughput_items_per_s=1000 / lat,
            model_size_bytes=size,
        )
        for p, lat, acc, size in (("fp32", 1.0, 0.9, 4e6), ("int8-static", 0.4, 0.89, 1e6))
        for b in (1, 8)
    ]
    frame = _frame(rows)
    caption = "host vm: test cpu, 2 cores, GPU: none; measured 2026-01-02 03:04 UTC; run r1"
    figures = [
        plots.latency_cdf(frame, caption),
        plots.throughput_vs_batch(frame, caption),
        plots.latency_vs_batch(frame, caption),
        plots.speedup(study.speedup_over_fp32(frame), caption),
        plots.pareto(study.pareto(frame), caption),
        plots.memory(frame, caption),
        plots.by_device(frame, caption),
    ]
    for fig in figures:
        assert any(caption in t.get_text().replace("\n", " ") for t in fig.texts)
        for ax in fig.axes:
            for text in (ax.get_xlabel(), ax.get_ylabel()):
                assert not text or "(" in text, text  # every axis label carries its unit
        assert plots.png(fig).startswith(b"\x89PNG")
    empty = frame.iloc[0:0]
    assert plots.png(plots.latency_cdf(empty, caption)).startswith(b"\x89PNG")
    assert plots.png(plots.pareto(study.pareto(empty), caption)).startswith(b"\x89PNG")


def test_end_to_end_table_keeps_only_rows_with_a_pipeline_and_plots_stages() -> None:
    stages = {"pre_ms_p50": 2.0, "e2e_model_ms_p50": 5.0, "post_ms_p50": 1.0}
    rows = [
        _row(batch_size=1, e2e_ms_p50=8.5, e2e_items_per_s=117.6, **stages),
        _row(batch_size=4, e2e_ms_p50=30.0, e2e_items_per_s=133.3, **stages),
        _row(precision="int8-static"),  # model-only: no pipeline timing
        _row(status="failed", e2e_ms_p50=1.0),
    ]
    table = study.end_to_end(_frame(rows))
    assert list(table["batch"]) == [1, 4]
    assert table.loc[0, "pre+post share"] == pytest.approx(3.0 / 8.5)
    assert table.loc[0, "model-only p50 (ms)"] == 1.0
    caption = "host: test"
    fig = plots.end_to_end_stages(table, caption)
    (ax,) = [a for a in fig.axes if a.get_title()]
    assert "batch 1" in ax.get_xlabel()
    assert len(ax.patches) == 3  # one configuration at batch 1, three stages
    assert study.end_to_end(_frame([_row()])).empty
    assert plots.end_to_end_stages(study.end_to_end(_frame([_row()])), caption) is not None


def test_export_matrix_shows_accuracy_where_labels_exist() -> None:
    rows = [_row(accuracy=0.9972, parity_pass=True), _row(precision="int8-static", accuracy=0.9944)]
    matrix = study.export_matrix(_frame(rows))
    assert list(matrix["accuracy"]) == [0.9972, 0.9944]
    assert "accuracy" not in study.export_matrix(_frame([_row()]))


# ---------------------------------------------------------------- the task notebooks' sections


def _shown(monkeypatch: pytest.MonkeyPatch) -> list:
    """What the sections display (tables, figures), collected instead of shown."""
    shown: list = []
    monkeypatch.setattr(sections, "show", lambda *objects: shown.extend(objects))
    return shown


def _ship_frame() -> pd.DataFrame:
    return _frame(
        [
            _row(precision="fp32", latency_ms_p50=2.0, latency_ms_p99=3.0, parity_pass=True),
            _row(
                precision="int8-dynamic", latency_ms_p50=0.5, latency_ms_p99=0.8, parity_pass=True
            ),
            _row(latency_ms_p50=8.0, latency_ms_p99=9.0, batch_size=8, parity_pass=True),
        ]
    )


def test_run_task_passes_the_notebooks_sweep_parameters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Each sweep parameter the notebook declares reaches the sweep (an empty one: the
    preset); a parameter of the task's own (not a sweep axis) stays out of it."""
    ran: list = []
    frame = _ship_frame()
    monkeypatch.setattr(sections, "run", lambda sweep: ran.append(sweep) or frame)
    params = {"profile": "ci", "models": [], "batch_sizes": [3], "ranking_candidates": [10]}
    rows, caption = study.run_task("tabular", params)
    (sweep,) = ran
    assert rows is frame and sweep.batch_sizes == [3]
    assert sweep.models == study.sweep_for("tabular", "ci").models
    out = capsys.readouterr().out.splitlines()
    assert out == [study.describe(sweep), caption] and "run r1" in caption


def test_what_to_ship_prints_the_table_and_returns_the_pick(capsys: pytest.CaptureFixture) -> None:
    frame = _ship_frame()
    choice = study.what_to_ship(frame)
    assert choice.constraints.batch_size == 1 and choice.best["precision"] == "int8-dynamic"
    out = capsys.readouterr().out
    table = readable(study.per_batch_and_device(frame)).to_string(index=False)
    assert out == f"{table}\n{choice.summary()}\n"


def test_speedup_and_end_to_end_sections_show_a_table_and_a_figure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown = _shown(monkeypatch)
    frame = _ship_frame()
    speedups = study.show_speedups(frame, "host: test")
    assert speedups.equals(study.speedup_over_fp32(frame))
    table, fig = shown
    assert list(table.data["precision"]) == ["int8-dynamic"] and isinstance(fig, Figure)
    assert ">0.5<" in table.to_html() and "0.500000" not in table.to_html()  # CLI format
    shown.clear()
    stages = {"pre_ms_p50": 2.0, "e2e_model_ms_p50": 5.0, "post_ms_p50": 1.0}
    assert study.show_end_to_end(_frame([_row(e2e_ms_p50=8.5, **stages)]), "host: test") is None
    table, fig = shown
    assert list(table.data["batch"]) == [1] and isinstance(fig, Figure)


def test_record_task_headline_records_the_pick_and_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path))
    frame = _ship_frame()
    choice = study.recommend(frame, study.Constraints(batch_size=1))
    study.record_task_headline("tabular", frame, choice, "ci")
    recorded = study.read_headlines(tmp_path / "headlines")
    values = {**study.headline_numbers(frame), "recommended": choice.summary()}
    assert recorded["tabular"]["values"] == values
    assert capsys.readouterr().out == "".join(f"{k}: {v}\n" for k, v in values.items())


def test_display_options_widen_the_tables() -> None:
    widths = ("display.max_columns", 5, "display.width", 80, "display.max_colwidth", 50)
    with pd.option_context(*widths):  # restored for the other tests
        study.display_options()
        assert pd.get_option("display.max_columns") == 40
        assert pd.get_option("display.width") == 200
        assert pd.get_option("display.max_colwidth") == 80


def test_log_axes_label_their_ticks_with_plain_numbers():
    """Figures never parse mathtext, so matplotlib's default log ticks
    (`$\\mathdefault{10^{-1}}$`) would print their markup: they must read as numbers."""
    fig, (ax,) = plots.new_figure(1)
    ax.plot([1, 8, 256], [0.05, 3, 90000])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    plots.finish_figure(fig, "caption")
    plots.png(fig)
    x = [t.get_text() for t in ax.get_xticklabels()]
    y = [t.get_text() for t in ax.get_yticklabels()]
    assert {"1", "8", "256"} <= set(x)
    assert {"0.1", "1", "1000"} <= set(y)
    assert not [label for label in x + y if "$" in label or "mathdefault" in label]


def test_what_to_ship_and_the_tables_write_numbers_like_the_cli(
    capsys: pytest.CaptureFixture,
) -> None:
    frame = _frame(
        [
            _row(
                precision="fp32",
                latency_ms_p50=3.2512,
                latency_ms_p99=4.31234,
                throughput_items_per_s=93230.41,
                parity_pass=True,
            )
        ]
    )
    study.what_to_ship(frame)
    out = capsys.readouterr().out
    assert "4.31" in out and "93,230" in out and "4.31234" not in out and "93230.4" not in out
    numbers = study.headline_numbers(frame)
    assert numbers["fastest p50"].startswith("3.25 ms at batch 1")
    assert numbers["best throughput"].startswith("93,230 items/s at batch 1")
    html = study.table(frame).to_html()
    assert ">3.25<" in html and ">93,230<" in html and "3.2512" not in html
