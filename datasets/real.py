"""The community's benchmark files, loaded by name (feature level).

Each dataset is looked for in ``DATA/<folder>/`` for each of its folder names, then in
``DATA/`` itself, where ``DATA`` is ``--data-dir`` or ``$CMHBENCH_DATA``.  The files are
the ones the DCMH, DJSRH/JDSH and UCCH authors released; see docs/datasets.md and
``cmhbench list datasets`` for names, keys and where to obtain them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmhbench.datasets.base import DatasetError, DatasetSource
from cmhbench.datasets.cache import file_fingerprint
from cmhbench.datasets.registry import register_dataset
from cmhbench.datasets.filesource import FileSource, Layout, Part
from cmhbench.datasets.files import ArrayFile, where
from cmhbench.datasets.protocols import Sizes

IMAGE_KEYS = ("XAll", "image", "features")  # tried in order in a features file the user names


@dataclass(frozen=True)
class Release:
    """The community's release file: its sha256 and size in bytes, so that a user learns
    whether the file they downloaded is the one the papers used (docs/datasets.md)."""

    sha256: str
    size: int


#: What a file is, in a record (``data_files``) and in ``cmhbench list datasets``.
VERIFIED, DIFFERS, UNKNOWN = "verified", "differs", "unknown"
RELEASE_STATES = {VERIFIED: "release file (sha256 verified)", DIFFERS: "differs from the release file",
                  UNKNOWN: "no reference checksum"}


@dataclass(frozen=True)
class Expected:
    """A file a dataset needs: accepted names (the first is canonical), keys, what it holds,
    and the release file's checksum where one is known."""

    role: str
    names: tuple[str, ...]
    keys: tuple[str, ...]
    holds: str
    release: Release | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    summary: str
    folders: tuple[str, ...]
    files: tuple[Expected, ...]
    protocols: tuple[str, ...]
    default_protocol: str
    obtain: str
    alternative: str = ""
    sizes: Sizes = Sizes()
    image_option: bool = False


UCCH_DATA = "the UCCH authors' release (links in github.com/penghu-cs/UCCH, data/README.md)"

SPECS: dict[str, Spec] = {}


def _spec(spec: Spec) -> Spec:
    SPECS[spec.name] = spec
    return spec


MIRFLICKR = _spec(Spec(
    name="mirflickr25k",
    title="MIRFlickr-25K (20,015 pairs, 24 labels)",
    summary="MIRFlickr-25K: 20,015 pairs, 24 labels, 1,386-d tags, VGG-19 fc7 features (files needed)",
    folders=("mirflickr25k", "MIRFLICKR25K", "mirflickr", "MIRFlickr"),
    files=(
        Expected("labels", ("mirflickr25k-lall.mat",), ("LAll",), "20,015 × 24 0/1 labels",
                 Release("173eec1fb2603bb54c893467c127325556fbe5bc91dd7e647d136a8e4e9fd07d", 51_716)),
        Expected("text", ("mirflickr25k-yall.mat",), ("YAll",), "20,015 × 1,386 0/1 tags",
                 Release("a53d2ba6a5f3672b5e747aaa8b76d4af6be568d300715c6910d8c67bdef55f7e", 327_403)),
        Expected("image", ("mirflickr25k-iall-vgg.mat", "mirflickr25k-xall-vgg.mat"), ("XAll",),
                 "20,015 × 4,096 VGG-19 fc7 features",
                 Release("95ed1d9ffdaf7fc8c8d24acc01d07367278d9936377bdc7a768a47bcd3cab540", 327_925_944)),
    ),
    protocols=("djsrh", "dcmh", "ucch"),
    default_protocol="djsrh",
    obtain=("labels and tags: the DJSRH / JDSH / UCCH releases (mirflickr25k-lall.mat, mirflickr25k-yall.mat); "
            "VGG-19 features mirflickr25k-iall-vgg.mat: " + UCCH_DATA + "; DCMH's single file FLICKR-25K.mat: "
            "github.com/jiangqy/DCMH-CVPR2017"),
    alternative=("instead of the lall/yall files, DCMH's single file FLICKR-25K.mat (LAll, YAll; it holds raw "
                 "images, so image features are still needed unless it has XAll); "
                 "other image features: --datasets mirflickr25k:image=FILE"),
    image_option=True,
))

NUSWIDE = _spec(Spec(
    name="nuswide",
    title="NUS-WIDE, top-10 concepts (186,577 pairs, 10 labels)",
    summary="NUS-WIDE top-10 concepts: 186,577 pairs, 10 labels, 1,000-d tags (files needed)",
    folders=("nus-wide-tc10", "NUS-WIDE-TC10", "nuswide", "nus-wide", "NUS-WIDE"),
    files=(
        Expected("labels", ("nus-wide-tc10-lall.mat",), ("LAll",), "186,577 × 10 0/1 labels"),
        Expected("text", ("nus-wide-tc10-yall.mat",), ("YAll",), "186,577 × 1,000 0/1 tags (MATLAB v5 or v7.3)"),
        Expected("image", ("nus-wide-tc10-xall-vgg.mat", "nus-wide-tc10-iall-vgg.mat"), ("XAll",),
                 "186,577 × 4,096 VGG-19 fc7 features"),
    ),
    protocols=("djsrh", "dcmh", "ucch"),
    default_protocol="djsrh",
    obtain="the DJSRH / UCCH releases; features nus-wide-tc10-xall-vgg.mat: " + UCCH_DATA,
    alternative="other image features: --datasets nuswide:image=FILE",
    sizes=Sizes(ucch_query=2100),
    image_option=True,
))

MSCOCO = _spec(Spec(
    name="mscoco",
    title="MS-COCO as used by UCCH (Doc2Vec text)",
    summary="MS-COCO (UCCH's file): image features, 300-d Doc2Vec text, 80 labels (file needed)",
    folders=("mscoco", "MSCOCO", "coco", "MS-COCO"),
    files=(
        Expected("all", ("MSCOCO_deep_doc2vec_data_rand.h5py",), ("XAll", "YAll", "LAll"),
                 "image features, 300-d Doc2Vec text, 0/1 labels (HDF5, rows first)"),
    ),
    protocols=("ucch", "djsrh", "dcmh"),
    default_protocol="ucch",
    obtain=UCCH_DATA,
    alternative="other image features: --datasets mscoco:image=FILE",
    sizes=Sizes(ucch_query=5000),
    image_option=True,
))

IAPR = _spec(Spec(
    name="iapr-tc12",
    title="IAPR TC-12 as used by UCCH (20,000 pairs, 255 labels)",
    summary="IAPR TC-12 (UCCH's file): 18,000 database + 2,000 test pairs, 255 labels (file needed)",
    folders=("iapr-tc12", "IAPR-TC12", "iapr", "IAPR"),
    files=(
        Expected("all", ("iapr-tc12-rand.mat",), ("VDatabase", "YDatabase", "databaseL", "VTest", "YTest", "testL"),
                 "image features, text, 0/1 labels of the database and test pairs"),
    ),
    protocols=("ucch", "djsrh", "dcmh"),
    default_protocol="ucch",
    obtain=UCCH_DATA,
))

WIKIPEDIA = _spec(Spec(
    name="wikipedia",
    title="Wikipedia (Rasiwasia et al. 2010; 2,866 pairs, 10 classes)",
    summary="Wikipedia: 2,173 train + 693 test pairs, 128-d SIFT, 10-d LDA, 10 classes (file needed)",
    folders=("wikipedia", "wiki", "Wikipedia", "WIKI"),
    files=(
        Expected("all", ("wikiData.mat",), ("I_tr", "I_te", "T_tr", "T_te", "L_tr", "L_te"),
                 "128-d SIFT BoVW, 10-d LDA topics, classes 1..10 of the train and test pairs",
                 Release("65eb91876cf7df0547165271336dd068f10d1df7bf433969622338baf410413c", 1_077_135)),
    ),
    protocols=("wiki",),
    default_protocol="wiki",
    obtain=("the Wikipedia benchmark, www.svcl.ucsd.edu/projects/crossmodal/; wikiData.mat is the community's "
            "packaging of its features, shipped with many cross-modal hashing codes"),
))


def release_of(name: str) -> Release | None:
    """The release file known under a file name (any of a dataset's accepted names)."""
    for spec in SPECS.values():
        for expected in spec.files:
            if expected.release is not None and name in expected.names:
                return expected.release
    return None


def file_state(path: Path, cache_root: Path | None) -> str:
    """:data:`VERIFIED`, :data:`DIFFERS` or :data:`UNKNOWN` for a file on disk: the size first
    (a differing size needs no hashing), then its sha256, memoised as every fingerprint is
    (:func:`cmhbench.datasets.cache.file_fingerprint`), so a run that follows hashes nothing."""
    release = release_of(path.name)
    if release is None:
        return UNKNOWN
    if path.stat().st_size != release.size:
        return DIFFERS
    return VERIFIED if file_fingerprint(path, cache_root) == release.sha256 else DIFFERS


def data_files(source: DatasetSource) -> dict[str, str]:
    """File name -> state of each file a resolved source reads, for its cells' records; from
    the sha256 digests its identity already holds (nothing is hashed again).  Empty for a
    source without files (synthetic)."""
    if not isinstance(source, FileSource):
        return {}
    digests = set(source.identity().get("sha256", ()))
    states = {}
    for _, part in source.layout.parts():
        release = release_of(part.path.name)
        states[part.path.name] = UNKNOWN if release is None else VERIFIED if release.sha256 in digests else DIFFERS
    return states


class Finder:
    """Where a dataset's files are looked for, and the one-line message when one is missing."""

    def __init__(self, spec: Spec, data_dir: Path | None) -> None:
        self.spec = spec
        self.data_dir = data_dir

    def folders(self) -> list[Path]:
        if self.data_dir is None:
            return []
        return [self.data_dir / sub for sub in self.spec.folders] + [self.data_dir]

    def find(self, names: tuple[str, ...]) -> Path | None:
        for folder in self.folders():
            for name in names:
                if (folder / name).is_file():
                    return folder / name
        return None

    def missing(self, expected: Expected) -> DatasetError:
        keys = ", ".join(expected.keys)
        what = f"{expected.names[0]} ({expected.role}: {keys}; {expected.holds})"
        if self.data_dir is None:
            return DatasetError(f"{self.spec.name}: no data folder to look for {what} — pass --data-dir DIR or set "
                                f"CMHBENCH_DATA, and put it in DIR/{self.spec.folders[0]}/")
        also = f" (also accepted: {', '.join(expected.names[1:])})" if len(expected.names) > 1 else ""
        return DatasetError(f"{self.spec.name}: file {what} not found{also}; put it in "
                            f"{self.data_dir / self.spec.folders[0]}/ or {self.data_dir}/ "
                            "(see `cmhbench list datasets`)")

    def need(self, expected: Expected) -> Path:
        path = self.find(expected.names)
        if path is None:
            raise self.missing(expected)
        return path

    def user_file(self, text: str) -> Path:
        """A file the user names: as given (absolute or from the working folder), else in a dataset folder."""
        path = Path(text).expanduser()
        if path.is_file():
            return path
        if not path.is_absolute():
            for folder in self.folders():
                if (folder / path).is_file():
                    return folder / path
        looked = ", ".join(str(f) for f in self.folders()) or "no data folder"
        raise DatasetError(f"{self.spec.name}: image features file {text!r} not found (looked in the working folder "
                           f"and {looked})")


def _image_key(spec: Spec, path: Path, n_rows: int | None = None) -> str:
    """The array holding image features in a file the user named."""
    af = ArrayFile(path, spec.name)
    for key in IMAGE_KEYS:
        if key in af.shapes:
            return key
    matrices = [k for k, s in af.shapes.items() if len(s) == 2 and (n_rows is None or s[0] == n_rows)]
    if len(matrices) == 1:
        return matrices[0]
    raise DatasetError(f"{spec.name}: {where(path)}: cannot tell which array holds the image features — name it "
                       f"{' or '.join(IMAGE_KEYS)} (found: {af.found()})")


def _options(spec: Spec, options: dict[str, str] | None) -> dict[str, str]:
    options = dict(options or {})
    allowed = {"image"} if spec.image_option else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        takes = f"options: {', '.join(sorted(allowed))}" if allowed else "it takes no options"
        raise DatasetError(f"dataset {spec.name!r} has no option {unknown[0]!r} ({takes})")
    return options


def _rows(path: Path, key: str, spec: Spec) -> int | None:
    shape = ArrayFile(path, spec.name).shapes.get(key)
    return shape[0] if shape else None


def _source(spec: Spec, layout: Layout, cache_dir: Any, name: str | None) -> FileSource:
    return FileSource(name=spec.name, spec=name or spec.name, layout=layout, protocols=spec.protocols,
                      default_protocol=spec.default_protocol, sizes=spec.sizes, cache_dir=cache_dir)


def _two_or_three_files(spec: Spec, data_dir: Path | None, options: dict[str, str],
                        single_names: tuple[str, ...] = ()) -> Layout:
    """labels + text files (or a single file holding both) + an image features file."""
    finder = Finder(spec, data_dir)
    labels_exp, text_exp, image_exp = spec.files
    lall, yall = finder.find(labels_exp.names), finder.find(text_exp.names)
    single = finder.find(single_names) if single_names else None
    if lall is not None and yall is not None:
        labels, text = Part(lall, "LAll"), Part(yall, "YAll")
    elif single is not None and (lall is None and yall is None):
        labels, text = Part(single, "LAll"), Part(single, "YAll")
    else:
        raise finder.missing(labels_exp if lall is None else text_exp)
    if "image" in options:
        path = finder.user_file(options["image"])
        image = Part(path, _image_key(spec, path, _rows(labels.path, "LAll", spec)))
    else:
        path = finder.find(image_exp.names)
        if path is not None:
            image = Part(path, "XAll")
        elif single is not None and "XAll" in ArrayFile(single, spec.name).shapes:
            image = Part(single, "XAll")
        else:
            error = finder.missing(image_exp)
            if single is not None:
                raise DatasetError(f"{error} — {single.name} holds raw images, not features; the benchmark is "
                                   f"feature-level (or name a features file: --datasets {spec.name}:image=FILE)")
            raise DatasetError(f"{error}; or name your own features file: --datasets {spec.name}:image=FILE")
    return Layout(image=(image,), text=(text,), labels=(labels,))


@register_dataset("mirflickr25k", MIRFLICKR.summary)
def resolve_mirflickr25k(data_dir: Path | None = None, *, cache_dir: Any = None,
                         options: dict[str, str] | None = None, spec: str | None = None) -> FileSource:
    layout = _two_or_three_files(MIRFLICKR, data_dir, _options(MIRFLICKR, options), single_names=("FLICKR-25K.mat",))
    return _source(MIRFLICKR, layout, cache_dir, spec)


@register_dataset("nuswide", NUSWIDE.summary)
def resolve_nuswide(data_dir: Path | None = None, *, cache_dir: Any = None,
                    options: dict[str, str] | None = None, spec: str | None = None) -> FileSource:
    layout = _two_or_three_files(NUSWIDE, data_dir, _options(NUSWIDE, options))
    return _source(NUSWIDE, layout, cache_dir, spec)


@register_dataset("mscoco", MSCOCO.summary)
def resolve_mscoco(data_dir: Path | None = None, *, cache_dir: Any = None,
                   options: dict[str, str] | None = None, spec: str | None = None) -> FileSource:
    options = _options(MSCOCO, options)
    finder = Finder(MSCOCO, data_dir)
    path = finder.need(MSCOCO.files[0])
    image = Part(path, "XAll")
    if "image" in options:
        own = finder.user_file(options["image"])
        image = Part(own, _image_key(MSCOCO, own, _rows(path, "LAll", MSCOCO)))
    layout = Layout(image=(image,), text=(Part(path, "YAll"),), labels=(Part(path, "LAll"),))
    return _source(MSCOCO, layout, cache_dir, spec)


@register_dataset("iapr-tc12", IAPR.summary)
def resolve_iapr(data_dir: Path | None = None, *, cache_dir: Any = None, spec: str | None = None) -> FileSource:
    path = Finder(IAPR, data_dir).need(IAPR.files[0])
    layout = Layout(image=(Part(path, "VDatabase"), Part(path, "VTest")),
                    text=(Part(path, "YDatabase"), Part(path, "YTest")),
                    labels=(Part(path, "databaseL"), Part(path, "testL")))
    return _source(IAPR, layout, cache_dir, spec)


@register_dataset("wikipedia", WIKIPEDIA.summary)
def resolve_wikipedia(data_dir: Path | None = None, *, cache_dir: Any = None, spec: str | None = None) -> FileSource:
    path = Finder(WIKIPEDIA, data_dir).need(WIKIPEDIA.files[0])
    layout = Layout(image=(Part(path, "I_tr"), Part(path, "I_te")),
                    text=(Part(path, "T_tr"), Part(path, "T_te")),
                    labels=(Part(path, "L_tr"), Part(path, "L_te")), class_base=1)
    return _source(WIKIPEDIA, layout, cache_dir, spec)
