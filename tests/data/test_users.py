import pandas as pd
import pytest

from seqlens.data import read_users
from seqlens.errors import DataError


def test_movielens_user_files_need_no_column_names(tmp_path):
    ml1m = tmp_path / "users.dat"
    ml1m.write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    table = read_users(ml1m)
    assert table.columns == ("gender", "age", "occupation")
    assert table.values_of(["2", "1", "9"], "age") == ["56", "1", "unknown"]
    ml100k = tmp_path / "u.user"
    ml100k.write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n4|24|M|technician|43537\n")
    table = read_users(ml100k, bands=2)
    assert table.values_of(["2", "3"], "age") == ["band 2 of 2", "band 1 of 2"]
    assert table.values_of(["2"], "occupation") == ["other"]


def test_a_csv_table_with_named_columns(tmp_path):
    path = tmp_path / "users.csv"
    pd.DataFrame({"uid": ["a", "b"], "plan": ["free", "paid"], "spend": [1.0, 9.0]}).to_csv(path, index=False)
    table = read_users(path, user="uid", categorical=["plan"], numeric=["spend"], bands=2)
    assert table.values_of(["b"], "plan") == ["paid"] and table.bands["spend"] == [1.0, 5.0, 9.0]


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"user_id": ["a"]}), {"categorical": ["plan"]}, "missing column 'plan'"),
        (pd.DataFrame({"user_id": ["a", "a"], "plan": ["x", "y"]}), {"categorical": ["plan"]}, "row 2, column 'user_id': user 'a' appears twice"),
        (pd.DataFrame({"user_id": ["a", "b"], "plan": ["x", None]}), {"categorical": ["plan"]}, "row 2, column 'plan': empty value"),
        (pd.DataFrame({"user_id": ["a", "b"], "spend": ["1", "lots"]}), {"numeric": ["spend"]}, "row 2, column 'spend': 'lots' is not a number"),
    ],
)  # fmt: skip
def test_bad_tables_are_errors_naming_the_place(frame, kwargs, message):
    with pytest.raises(DataError, match=message):
        read_users(frame, **kwargs)
    with pytest.raises(DataError, match="no user column 'plan'"):
        read_users(pd.DataFrame({"user_id": ["a"]})).values_of(["a"], "plan")
