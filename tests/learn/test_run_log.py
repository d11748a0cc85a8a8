import csv

from dyndis_learn.run_log import LOG_COLUMNS, LOG_NAME, RunLog


def _row(step: int) -> dict[str, float]:
    return {column: float(step) for column in LOG_COLUMNS}


def test__the_csv_is_rewritten_from_the_history_then_appended(tmp_path):
    (tmp_path / LOG_NAME).write_text("stale\n")
    with RunLog(tmp_path, [_row(1), _row(2)], total=4, initial=2, progress=False) as log:
        log.write(_row(3), losses=("loss",))
        log.step()
    with open(tmp_path / LOG_NAME) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(LOG_COLUMNS) and [float(r["step"]) for r in rows] == [1, 2, 3]


def test__without_a_run_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with RunLog(None, [], total=1, initial=0, progress=False) as log:
        log.write(_row(1), losses=())
    assert list(tmp_path.iterdir()) == []


def test__tensorboard_events(tmp_path):
    with RunLog(tmp_path, [], total=2, initial=0, tensorboard=True, progress=False) as log:
        log.write(_row(1), losses=("loss",))
    assert any((tmp_path / "tensorboard").iterdir())
