"""`cmhbench list datasets`: files expected, where they are looked for, what is present."""

from cmhbench import datasets


def test_listing_with_the_shared_data(shared_data):
    entries = {e.name: e for e in datasets.catalog(shared_data)}
    assert set(entries) >= {"synthetic", "wikipedia", "mirflickr25k", "nuswide", "mscoco", "iapr-tc12"}
    assert entries["synthetic"].status == "built in"
    assert entries["wikipedia"].status == "ready"
    mir = entries["mirflickr25k"]
    assert mir.status == "missing 1 of 3 files"
    assert [f.present for f in mir.files] == [True, True, False]
    assert mir.files[0].found == shared_data / "mirflickr25k" / "mirflickr25k-lall.mat"

    text = datasets.listing(shared_data)
    assert f"Data folder: {shared_data} (from --data-dir)" in text
    assert "mirflickr25k-iall-vgg.mat or mirflickr25k-xall-vgg.mat [XAll]" in text and "MISSING" in text
    assert "obtain: " in text and "github.com/penghu-cs/UCCH" in text
    rows, headers = datasets.rows(shared_data)
    by_name = {row[0]: row for row in rows}
    assert headers[0] == "dataset" and by_name["wikipedia"][:3] == ["wikipedia", "ready", "wiki*"]


def test_listing_without_a_data_folder_and_from_the_environment(tmp_path, monkeypatch):
    assert "Data folder: none given — pass --data-dir DIR or set CMHBENCH_DATA" in datasets.listing()
    monkeypatch.setenv("CMHBENCH_DATA", str(tmp_path / "nowhere"))
    text = datasets.listing()
    assert f"Data folder: {tmp_path / 'nowhere'} (does not exist) (from $CMHBENCH_DATA)" in text
