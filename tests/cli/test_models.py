"""`seqlens models`: add, list, promote and rollback from the command line, with errors on stderr."""

from typer.testing import CliRunner

from seqlens.cli.main import app
from seqlens.recommenders import ModelStore

runner = CliRunner()


def test_a_store_is_managed_from_the_command_line(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    store = str(tmp_path / "store")
    for args in (["add", store, str(tmp_path / "model"), "--promote", "--note", "first"],
                 ["add", store, str(tmp_path / "model")], ["promote", store, "2"]):  # fmt: skip
        result = runner.invoke(app, ["models", *args])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["models", "list", store])
    assert listed.exit_code == 0 and "first" in listed.output
    result = runner.invoke(app, ["models", "rollback", store])
    assert result.exit_code == 0, result.output
    assert ModelStore(store).promoted() == 1
    result = runner.invoke(app, ["models", "rollback", store])
    assert result.exit_code == 2 and "nothing to roll back to" in result.output


def test_errors_name_the_problem(tmp_path):
    result = runner.invoke(app, ["models", "list", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a model store" in result.output
    result = runner.invoke(app, ["models", "add", str(tmp_path / "store"), str(tmp_path)])
    assert result.exit_code == 2 and "config.json: missing" in result.output
    assert not (tmp_path / "store").exists()  # a failed first add leaves no empty store behind
