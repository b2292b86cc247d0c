"""ELAN .eaf and BORIS tabular events: round trips, files written by the other tools, refusals naming the file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from fer_models.errors import ArtifactError
from fer_models.label_interchange import (BORIS_COLUMNS, main as fer_labels, read_boris, read_eaf, read_tracks,
                                          write_boris, write_eaf)
from fer_models.session_log import LabelInterval, label_at, read_label_intervals, write_label_intervals

A = [LabelInterval(0.0, 1200.0, "Happy"), LabelInterval(1200.0, 2400.0, "Sad"), LabelInterval(3000.0, 4500.0, "Fear")]
B = [LabelInterval(100.0, 1300.0, "Happy"), LabelInterval(1300.0, 2500.0, "Angry")]


def _frame_track(fps: float = 30.0) -> list[LabelInterval]:
    """Boundaries as the app writes them: frame start times rounded down to 1 µs (app.video_labels)."""
    from app.video_labels import frame_boundary_ms

    def b(frame):
        return frame_boundary_ms(frame * 1000.0 / fps)

    return [LabelInterval(b(0), b(37), "Happy"), LabelInterval(b(37), b(38), "Sad"),
            LabelInterval(b(50), b(91), "Neutral")]


@pytest.mark.parametrize("suffix", [".eaf", ".tsv", ".csv"])
def test_whole_millisecond_tracks_round_trip_exactly(tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    (write_eaf if suffix == ".eaf" else write_boris)(path, {"rater_A": A, "rater_B": B})
    back = read_tracks(path)
    assert list(back) == ["rater_A", "rater_B"]
    assert back == {"rater_A": A, "rater_B": B}


@pytest.mark.parametrize("suffix", [".eaf", ".tsv"])
@pytest.mark.parametrize("fps", [30.0, 29.97, 60.0, 15.0])
def test_frame_boundaries_keep_every_frame_label(tmp_path, suffix, fps):
    track = _frame_track(fps)
    path = tmp_path / f"labels{suffix}"
    (write_eaf if suffix == ".eaf" else write_boris)(path, {"me": track})
    back = read_tracks(path)["me"]
    frames = [k * 1000.0 / fps for k in range(100)]  # where the replay and the window look labels up
    assert [label_at(back, t) for t in frames] == [label_at(track, t) for t in frames]
    assert all(float(r.start_ms).is_integer() and float(r.end_ms).is_integer() for r in back)
    assert [r.label for r in back] == [r.label for r in track]


def test_the_eaf_is_an_eaf_3_0_document_elan_reads(tmp_path):
    video = tmp_path / "media" / "clip.mp4"
    video.parent.mkdir()
    video.write_bytes(b"")
    path = write_eaf(tmp_path / "out" / "labels.eaf", {"rater_A": A, "rater_B": B}, media=video)
    root = ET.parse(path).getroot()
    assert root.tag == "ANNOTATION_DOCUMENT" and root.get("FORMAT") == "3.0" and root.get("VERSION") == "3.0"
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation") == \
        "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
    assert root.get("AUTHOR") is not None and "T" in root.get("DATE")
    # the schema's element order: HEADER, TIME_ORDER, TIER*, LINGUISTIC_TYPE*, ..., CONSTRAINT*
    tags = [child.tag for child in root]
    assert tags == ["HEADER", "TIME_ORDER", "TIER", "TIER", "LINGUISTIC_TYPE"] + ["CONSTRAINT"] * 4
    header = root.find("HEADER")
    assert header.get("TIME_UNITS") == "milliseconds"
    media = header.find("MEDIA_DESCRIPTOR")
    assert media.get("MEDIA_URL") == video.resolve().as_uri() and media.get("MIME_TYPE") == "video/mp4"
    assert media.get("RELATIVE_MEDIA_URL") == "../media/clip.mp4"
    assert [c.tag for c in header] == ["MEDIA_DESCRIPTOR", "PROPERTY"]
    slots = {ts.get("TIME_SLOT_ID"): int(ts.get("TIME_VALUE")) for ts in root.iter("TIME_SLOT")}
    assert sorted(slots.values()) == [0, 100, 1200, 1300, 2400, 2500, 3000, 4500]  # shared slots, ms integers
    tiers = root.findall("TIER")
    assert [t.get("TIER_ID") for t in tiers] == ["rater_A", "rater_B"]
    assert all(t.get("LINGUISTIC_TYPE_REF") == "fer-label" for t in tiers)
    lt = root.find("LINGUISTIC_TYPE")
    assert lt.get("LINGUISTIC_TYPE_ID") == "fer-label" and lt.get("TIME_ALIGNABLE") == "true"
    ids = [a.get("ANNOTATION_ID") for a in root.iter("ALIGNABLE_ANNOTATION")]
    assert ids == ["a1", "a2", "a3", "a4", "a5"] and len(set(ids)) == 5
    assert header.find("PROPERTY").get("NAME") == "lastUsedAnnotationId" and header.find("PROPERTY").text == "5"
    first = root.find("TIER/ANNOTATION/ALIGNABLE_ANNOTATION")
    assert (slots[first.get("TIME_SLOT_REF1")], slots[first.get("TIME_SLOT_REF2")]) == (0, 1200)
    assert first.findtext("ANNOTATION_VALUE") == "Happy"


ELAN_WRITTEN = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2024-03-05T14:21:09+01:00" FORMAT="3.0" VERSION="3.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:noNamespaceSchemaLocation="http://www.mpi.nl/tools/elan/EAFv3.0.xsd">
    <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
        <MEDIA_DESCRIPTOR MEDIA_URL="file:///C:/Users/coder/videos/session04.mp4" MIME_TYPE="video/mp4"
            RELATIVE_MEDIA_URL="./session04.mp4"/>
        <PROPERTY NAME="URN">urn:nl-mpi-tools-elan-eaf:4b1c0a83-4d2e-4f7a-9d0c-2f0f1c9e7b11</PROPERTY>
        <PROPERTY NAME="lastUsedAnnotationId">6</PROPERTY>
    </HEADER>
    <TIME_ORDER>
        <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="480"/>
        <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="2310"/>
        <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2310"/>
        <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="5020"/>
        <TIME_SLOT TIME_SLOT_ID="ts5" TIME_VALUE="700"/>
        <TIME_SLOT TIME_SLOT_ID="ts6" TIME_VALUE="4990"/>
    </TIME_ORDER>
    <TIER DEFAULT_LOCALE="en" LINGUISTIC_TYPE_REF="emotion" TIER_ID="Coder1" ANNOTATOR="Maria">
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
                <ANNOTATION_VALUE>happy</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
                <ANNOTATION_VALUE>SURPRISE</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="comment" PARENT_REF="Coder1" TIER_ID="Coder1-notes">
        <ANNOTATION>
            <REF_ANNOTATION ANNOTATION_ID="a3" ANNOTATION_REF="a1">
                <ANNOTATION_VALUE>big smile</ANNOTATION_VALUE>
            </REF_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="emotion" TIER_ID="Coder2">
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a5" TIME_SLOT_REF1="ts5" TIME_SLOT_REF2="ts6">
                <ANNOTATION_VALUE>Happy</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="emotion" TIME_ALIGNABLE="true"
        CONTROLLED_VOCABULARY_REF="FER7"/>
    <LINGUISTIC_TYPE CONSTRAINTS="Symbolic_Association" GRAPHIC_REFERENCES="false"
        LINGUISTIC_TYPE_ID="comment" TIME_ALIGNABLE="false"/>
    <LOCALE COUNTRY_CODE="US" LANGUAGE_CODE="en"/>
    <CONSTRAINT DESCRIPTION="1-1 association with a parent annotation" STEREOTYPE="Symbolic_Association"/>
    <CONTROLLED_VOCABULARY CV_ID="FER7">
        <DESCRIPTION LANG_REF="eng"/>
        <CV_ENTRY_ML CVE_ID="cveid1"><CVE_VALUE LANG_REF="eng">happy</CVE_VALUE></CV_ENTRY_ML>
    </CONTROLLED_VOCABULARY>
</ANNOTATION_DOCUMENT>
"""


def test_an_eaf_written_by_elan_parses(tmp_path):
    path = tmp_path / "session04.eaf"
    path.write_text(ELAN_WRITTEN, encoding="utf-8")
    notes = []
    tracks = read_eaf(path, notes=notes)
    assert tracks == {"Coder1": [LabelInterval(480.0, 2310.0, "Happy"), LabelInterval(2310.0, 5020.0, "Surprise")],
                      "Coder2": [LabelInterval(700.0, 4990.0, "Happy")]}
    assert len(notes) == 1 and "Coder1-notes" in notes[0] and "skipped" in notes[0]


BORIS_8 = "\t".join(BORIS_COLUMNS) + "\n" + "\n".join("\t".join(r) for r in [
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ana", "happy", "", "START", "0.500", "/data/v.mp4", "15", "NA", ""],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "", "look away", "", "POINT", "1.000", "/data/v.mp4", "30", "NA", ""],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ana", "happy", "", "STOP", "2.999", "/data/v.mp4", "89", "NA", ""],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ana", "sad", "", "START", "3.000", "/data/v.mp4", "90", "NA", "a comment"],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ben", "Neutral", "", "START", "3.500", "/data/v.mp4", "105", "NA", ""],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ana", "sad", "", "STOP", "6.250", "/data/v.mp4", "187", "NA", ""],
    ["obs1", "2024-05-02 10:11:12", "", "12.000", "Media file(s)", "player #1:/data/v.mp4", "0.0", "12.000",
     "30.000", "Ben", "Neutral", "", "STOP", "8.000", "/data/v.mp4", "240", "NA", ""],
]) + "\n"

BORIS_7_CSV = """Observation id,obs2
Observation date,2019-01-01T10:00:00
Description,
Media file,/data/old.mp4

Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status
1.200,/data/old.mp4,20.0,25.0,,Fear,,,START
4.800,/data/old.mp4,20.0,25.0,,Fear,,,STOP
"""


def test_boris_exports_parse_new_and_old_layouts(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text(BORIS_8, encoding="utf-8")
    notes = []
    tracks = read_boris(path, notes=notes)
    assert tracks == {"Ana": [LabelInterval(500.0, 2999.0, "Happy"), LabelInterval(3000.0, 6250.0, "Sad")],
                      "No focal subject": [], "Ben": [LabelInterval(3500.0, 8000.0, "Neutral")]}
    assert notes == ["1 POINT events (no duration) skipped: only state events are label intervals"]
    old = tmp_path / "old.csv"
    old.write_text(BORIS_7_CSV, encoding="utf-8")
    assert read_boris(old) == {"No focal subject": [LabelInterval(1200.0, 4800.0, "Fear")]}


def test_our_boris_rows_have_the_boris_8_columns_and_pair_by_time(tmp_path):
    path = write_boris(tmp_path / "ev.tsv", {"rater_A": A}, media=tmp_path / "v.mp4", fps=30.0, duration_s=5.0)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == list(BORIS_COLUMNS)
    rows = [line.split("\t") for line in lines[1:]]
    col = {c: i for i, c in enumerate(BORIS_COLUMNS)}
    assert [(r[col["Time"]], r[col["Behavior"]], r[col["Behavior type"]]) for r in rows] == [
        ("0.000", "Happy", "START"), ("1.200", "Happy", "STOP"), ("1.200", "Sad", "START"), ("2.400", "Sad", "STOP"),
        ("3.000", "Fear", "START"), ("4.500", "Fear", "STOP")]
    assert {r[col["Subject"]] for r in rows} == {"rater_A"} and rows[1][col["Image index"]] == "36"
    assert rows[0][col["FPS"]] == "30.000" and rows[0][col["Media duration (s)"]] == "5.000"


@pytest.mark.parametrize("text, problem", [
    ("<ANNOTATION_DOCUMENT><HEADER", "not a readable XML file"),
    ("<TEI/>", "not an ELAN .eaf"),
    (ELAN_WRITTEN.replace(">SURPRISE<", ">Joy<"), "tier 'Coder1', annotation a2: unknown label 'Joy'"),
    (ELAN_WRITTEN.replace('<TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="5020"/>', '<TIME_SLOT TIME_SLOT_ID="ts4"/>'),
     "time slot ts4 has no TIME_VALUE"),
    (ELAN_WRITTEN.replace('TIME_SLOT_REF2="ts6"', 'TIME_SLOT_REF2="ts9"'), "TIME_SLOT_REF2 'ts9' names no TIME_SLOT"),
    (ELAN_WRITTEN.replace('TIME_VALUE="2310"/>\n        <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2310"',
                          'TIME_VALUE="2310"/>\n        <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="2000"'),
     "overlaps annotation a1"),
    (ELAN_WRITTEN.replace('TIME_VALUE="480"', 'TIME_VALUE="abc"'), "TIME_VALUE 'abc' is not a number"),
], ids=["xml", "root", "label", "unaligned", "slot", "overlap", "number"])
def test_malformed_eaf_is_refused_naming_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.eaf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        read_eaf(path)
    assert str(exc.value).startswith(str(path)) and problem in str(exc.value)


def _boris(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["Subject\tBehavior\tBehavior type\tTime"] + ["\t".join(r) for r in rows]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, problem", [
    (_boris([("A", "Happy", "STOP", "1.0")]), "line 2: STOP of 'Happy' (A) without a START"),
    (_boris([("A", "Happy", "START", "1.0")]), "line 2: START of a state event (A) that is never stopped"),
    (_boris([("A", "Happy", "START", "1.0"), ("A", "Happy", "START", "2.0")]), "line 3: START of 'Happy' (A) while"),
    (_boris([("A", "Happy", "START", "x"), ("A", "Happy", "STOP", "2")]), "line 2: Time 'x' is not a number"),
    (_boris([("A", "Happy", "START", "1"), ("A", "Happy", "STOP", "2"), ("A", "Joy", "START", "3"),
             ("A", "Joy", "STOP", "4")]), "subject 'A', lines 4-5: unknown label 'Joy'"),
    (_boris([("A", "Happy", "START", "1"), ("A", "Sad", "START", "2"), ("A", "Happy", "STOP", "3"),
             ("A", "Sad", "STOP", "4")]), "overlaps lines 2-4"),
    (_boris([("A", "Happy", "BEGIN", "1")]), "event type 'BEGIN'"),
    ("Time,Subject\n1.0,A\n", "no BORIS events header"),
], ids=["stop", "open", "twice", "time", "label", "overlap", "type", "header"])
def test_malformed_boris_is_refused_naming_the_file_and_line(tmp_path, text, problem):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError) as exc:
        read_boris(path)
    assert str(exc.value).startswith(str(path)) and problem in str(exc.value)


def test_fer_labels_cli_export_then_import(tmp_path, capsys):
    a = write_label_intervals(tmp_path / "rater_A.csv", A)
    b = write_label_intervals(tmp_path / "rater_B.csv", B)
    eaf = tmp_path / "both.eaf"
    assert fer_labels(["export", str(eaf), str(a), str(b)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"out": str(eaf), "format": "eaf", "tracks": {"rater_A": 3, "rater_B": 2}}
    assert fer_labels(["export", str(eaf), str(a)]) == 2  # never overwrites without --force
    assert "exists" in capsys.readouterr().err
    dest = tmp_path / "back"
    assert fer_labels(["import", str(eaf), "--out-dir", str(dest)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == {"rater_A": str(dest / "rater_A.csv"), "rater_B": str(dest / "rater_B.csv")}
    assert read_label_intervals(dest / "rater_A.csv") == A and read_label_intervals(dest / "rater_B.csv") == B
    tsv = tmp_path / "both.tsv"
    assert fer_labels(["export", str(tsv), str(a), str(b), "--names", "Ana", "Ben"]) == 0
    capsys.readouterr()
    assert fer_labels(["import", str(tsv), "--out-dir", str(tmp_path / "b2"), "--tier", "Ben"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == {"Ben": str(tmp_path / "b2" / "Ben.csv")}
    assert read_label_intervals(tmp_path / "b2" / "Ben.csv") == B
    assert fer_labels(["import", str(tsv), "--out-dir", str(tmp_path / "b3"), "--tier", "Cleo"]) == 2
    assert "no tier or subject ['Cleo']" in capsys.readouterr().err
    bad = tmp_path / "bad.eaf"
    bad.write_text("<nope", encoding="utf-8")
    assert fer_labels(["import", str(bad), "--out-dir", str(tmp_path / "b4")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fer-labels: error: {bad}: not a readable XML file") and "Traceback" not in err
    assert not (tmp_path / "b4").exists()  # nothing written for a refused file
    assert fer_labels(["export", str(tmp_path / "x.srt"), str(a)]) == 2
    assert "unknown label file type '.srt'" in capsys.readouterr().err
