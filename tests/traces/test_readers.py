"""Trace readers: formats detected from content, samples, malformed input, sorting."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwmodels.errors import ConfigError
from traces.readers import TraceFormat, detect_format, read_trace


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bundled_azure_sample() -> None:
    df = read_trace("azure-conv-2023-sample")
    assert df.attrs["format"] == TraceFormat.AZURE_2023
    assert len(df) == 2000
    assert df["arrival_time_s"].iloc[0] == 0.0
    assert df["arrival_time_s"].is_monotonic_increasing
    # first rows of the file: 18:15:46.6805900 and 18:15:50.9951690, 374/44 and 396/109 tokens
    assert df["arrival_time_s"].iloc[1] == pytest.approx(4.314579, abs=1e-6)
    assert list(df["input_tokens"].iloc[:2]) == [374, 396]
    assert list(df["output_tokens"].iloc[:2]) == [44, 109]


def test_bundled_mooncake_sample() -> None:
    df = read_trace("mooncake-conversation-sample")
    assert df.attrs["format"] == TraceFormat.MOONCAKE
    assert df.attrs["hash_block_tokens"] == 512
    assert len(df) == 1000
    assert df["prefix_hashes"].iloc[0] == list(range(14))
    assert df["input_tokens"].iloc[0] == 6758 and df["output_tokens"].iloc[0] == 500


def test_azure_2024_detected_by_timestamp(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2024-05-10 00:00:00.009930+00:00,100,10\n"
                  "2024-05-10 00:00:01.509930+00:00,200,20\n")
    df = read_trace(path)
    assert df.attrs["format"] == TraceFormat.AZURE_2024
    assert df["arrival_time_s"].tolist() == pytest.approx([0.0, 1.5])


def test_burstgpt_keeps_failed_rows_flagged(tmp_path: Path) -> None:
    path = _write(tmp_path, "b.csv", "Timestamp,Model,Request tokens,Response tokens,"
                  "Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n"
                  "45,ChatGPT,1087,0,1087,Conversation log\n48,GPT-4,417,276,693,API log\n")
    assert detect_format(path) is TraceFormat.BURSTGPT
    df = read_trace(path)
    assert len(df) == 3
    assert df["failed"].tolist() == [False, True, False]
    assert df["model"].tolist()[2] == "GPT-4"


def test_generic_csv_and_jsonl(tmp_path: Path) -> None:
    csv = _write(tmp_path, "g.csv", "arrival_time_s,input_tokens,output_tokens,session_id,"
                 "prefix_hashes\n0.5,10,3,s1,1 2\n1.0,20,4,s2,\"[1, 3]\"\n")
    df = read_trace(csv)
    assert df["prefix_hashes"].tolist() == [[1, 2], [1, 3]]
    assert df["session_id"].tolist() == ["s1", "s2"]
    jsonl = _write(tmp_path, "g.jsonl", '{"arrival_time_s": 0, "input_tokens": 5, '
                   '"output_tokens": 2}\n\n{"arrival_time_s": 2.5, "input_tokens": 6, '
                   '"output_tokens": 1, "prefix_hashes": [7]}\n')
    df = read_trace(jsonl)
    assert df.attrs["format"] == TraceFormat.GENERIC_JSONL
    assert df["prefix_hashes"].tolist() == [[], [7]]


def test_unsorted_rows_sorted_with_counted_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.csv", "arrival_time_s,input_tokens,output_tokens\n"
                  "3,1,1\n1,2,2\n2,3,3\n0,4,4\n")
    df = read_trace(path)
    assert df["arrival_time_s"].tolist() == [0, 1, 2, 3]
    assert df["input_tokens"].tolist() == [4, 2, 3, 1]
    assert len(df.attrs["warnings"]) == 1
    assert "2 row(s) out of timestamp order" in df.attrs["warnings"][0]


@pytest.mark.parametrize("text, needle", [
    ("arrival_time_s,input_tokens\n0,1\n", "missing column(s) output_tokens"),
    ("arrival_time_s,input_tokens,output_tokens\n0,1,1\n1,-5,1\n", "line 3: value '-5'"),
    ("arrival_time_s,input_tokens,output_tokens\n0,1,1\n1,2,1\nx,2,1\n",
     "line 4: non-numeric value 'x'"),
    ("arrival_time_s,input_tokens,output_tokens\n0,1.5,1\n", "line 2: expected an integer"),
    ("arrival_time_s,input_tokens,output_tokens\n", "no rows"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nnot-a-date,1,1\n", "line 2: bad timestamp"),
])
def test_malformed_csv_one_line_error(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(ConfigError) as err:
        read_trace(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_malformed_jsonl_reports_file_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.jsonl", '{"timestamp": 0, "input_length": 5, '
                  '"output_length": 1, "hash_ids": [1]}\n\n{"timestamp": 5, '
                  '"input_length": "many", "output_length": 1, "hash_ids": []}\n')
    with pytest.raises(ConfigError, match="line 3: non-numeric value 'many'"):
        read_trace(path)
    broken = _write(tmp_path, "broken.jsonl", '{"timestamp": 0}\n{oops\n')
    with pytest.raises(ConfigError, match="line 2: invalid JSON"):
        read_trace(broken, format="generic-jsonl")


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_trace(tmp_path / "nope.csv")
    path = _write(tmp_path, "g.csv", "arrival_time_s,input_tokens,output_tokens\n0,1,1\n")
    with pytest.raises(ConfigError, match="allowed: azure-2023"):
        read_trace(path, format="parquet")
