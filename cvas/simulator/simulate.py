"""A deterministic simulated Nova: the legacy tables in a DuckDB file, the Excel CPC master, the exclusion list."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from cvas.sql import connect, load_sql

log = logging.getLogger(__name__)

DATABASE_NAME = "nova.duckdb"
MASTER_NAME = "Master_CPCs.xlsx"
EXCLUSIONS_NAME = "Users_No_Limits.csv"
GENERATOR = "cvas.simulator.simulate/1"

DAY_S = 86_400
_EPOCH = dt.date(1970, 1, 1)

# How far back subscriptions are generated so the base alive on the first simulated day is
# in steady state: they appear in the window first as RENO, their ACT lies before it.
HISTORY_DAYS = 1825
# Before this many days ahead of the window, acquisitions follow the "legacy" CPC weights
# (old services with renewals but no activations any more); after it, the current ones.
CURRENT_OFFER_DAYS = 180

# Lifetime of a paid subscription in days: a short-lived share (early churners) and a long tail.
SHORT_SHARE, SHORT_MEAN, LONG_MEAN = 0.35, 14.0, 600.0
TRIAL_CONVERSION = 0.65          # free trials upgraded to their paid CPC at trial end
CANCEL_FIRST = 0.25              # paid ends announced by a CNR, DCT at the next renewal date
REFUND_RATE = 0.012              # charges that get refunded the same day
DUPLICATE_RATE = 0.002           # fact rows inserted twice
BOUNDARY_RATE = 0.001            # RENO rows at exactly 00:00:00 or 23:59:59
PPD_BASE, PPD_PER_NEW = 0.5, 0.004
# New subscriptions per weekday (Mon..Sun, mean 1): the Friday peak of acquisitions becomes
# the Friday peak of weekly renewals (legacy rule L14.2).
WEEKDAY_FACTOR = np.array([1.10, 1.00, 0.65, 0.60, 1.55, 1.05, 1.05])

CHANNELS: tuple[tuple[int, str], ...] = (
    (1, "ORGANIC"), (2, "WEB"), (3, "SMS"), (4, "CCC-CR"), (5, "UPGRADE"),
    (6, "IVR"), (7, "APP"), (8, "SYSTEM"), (9, "PROMO"),
)
UPGRADE_CHANNEL = 5
UNMAPPED_CHANNELS = (0, 99)      # used in the fact table, absent from channel_dim
_ACT_CHANNELS = (np.array([1, 2, 3, 7, 9, 4, 0, 99]), np.array([.40, .25, .15, .08, .05, .03, .02, .02]))
_DCT_CHANNELS = (np.array([4, 8, 2, 3, 7, 0]), np.array([.35, .30, .15, .10, .05, .05]))
_TRIAL_END_CHANNELS = (np.array([8, 4, 99]), np.array([.85, .10, .05]))
_CNR_MODES = (("CCC-CR", 4), ("WEB", 2), ("SMS", 3), ("IVR", 6))
_CNR_MODE_P = np.array([.50, .25, .15, .10])

_CAMPAIGNS = ("53e0c03", "c342de8", "5de65c1", "a91f2b7", "0d4e8f1", "normal", "destacado")
_CAMPAIGN_P = np.array([.30, .15, .12, .08, .05, .20, .10])
_MEDIA = ("sms", "web", "banner", "push", "email")
_PROVIDERS = ("101", "205", "318", "7", "412")
_REFUND_REASONS = ("Customer claim", "Unrecognised charge", "Service not received", "Goodwill")
_AUTO_TEXTS = ("Automatic Refund", "automatic refund", "AUTOMATIC REFUND")

_MODELS = {"W": "Weekly subscription", "M": "Monthly subscription", "T": "Trimonthly subscription",
           "D": "One day subscription", "P": "PPD", None: None}
_MODEL_DAYS = {"W": 7, "M": 30, "T": 90, "D": 1, "P": 0, None: 0}


@dataclass(frozen=True)
class CatalogueCpc:
    """One CPC of the simulated catalogue and how the simulator uses it."""

    cpc: int
    service_name: str | None
    tme_category: str | None
    model: str | None            # W M T D P or None (blank), see _MODELS
    price: float | None
    provider: str | None
    upgrade_to: int | str | None = None   # the workbook's "CPC to upgrade" cell
    new: float = 0.0             # weight among acquisitions near and in the window
    old: float = 0.0             # weight among acquisitions long before the window
    ppd: float = 0.0             # weight among pay-per-download purchases
    auto_refund: bool = False    # CPC with automatic ("instant") refunds
    in_master: bool = True       # False: used in transactions but missing from the master
    estado: str = "Activo"

    @property
    def period(self) -> int:
        return _MODEL_DAYS[self.model]

    @property
    def subscription_model(self) -> str | None:
        return _MODELS[self.model]


def _c(cpc, service, category, model, price, provider, **kw) -> CatalogueCpc:
    return CatalogueCpc(cpc, service, category, model, price, provider, **kw)


# The simulated catalogue: invented, with the legacy quirks (legacy rules L4.2, L4.5, L14.3).
CATALOGUE: tuple[CatalogueCpc, ...] = (
    # current offer: where the window's activations go (about 26 CPCs acquire)
    _c(41949, "Top Video", "Free Time", "W", 1.64, "Tribuu Media", new=10, old=14),
    _c(41950, "Top Video", "Free Time", "W", 0.0, "Tribuu Media", upgrade_to=41949, new=5, old=2),
    _c(43617, "Videos Tribuu", "Free Time", "W", 2.47, "Tribuu Media", new=8, old=8, auto_refund=True),
    _c(43618, "Videos Tribuu", "Free Time", "W", 0.0, "Tribuu Media", upgrade_to=43617, new=3, old=1),
    _c(44009, "Abaco", "Education", "W", 1.64, "Abaco Digital", new=8, old=7, auto_refund=True),
    _c(44010, "Abaco", "Education", "W", 0.0, "Abaco Digital", upgrade_to=44009, new=3, old=1),
    _c(44011, "Abaco", "Education", "M", 5.36, "Abaco Digital", old=0.5),
    _c(45335, "Noticias emocion", "News", "W", 1.49, "Emocion Media", new=5, old=6, auto_refund=True),
    _c(45337, "Noticias emocion", "News", "W", 0.0, "Emocion Media", upgrade_to=45335, new=1),
    _c(45339, "Noticias emocion", "News", "M", 5.36, "Emocion Media", old=0.5),
    _c(45589, "Top Music Tv", "Music", "M", 8.26, "Top Media Group", new=9, old=10, auto_refund=True),
    _c(45590, "Top Music Tv", "Music", "W", 0.0, "Top Media Group", upgrade_to=45589, new=4, old=1),
    _c(45629, "Movistar Musica", "Music", "M", 9.91, "Telefonica", new=4, old=12),
    _c(45631, "Movistar Musica", "Music", "W", 0.0, "Telefonica", upgrade_to=45629, new=1, old=0.5),
    _c(46109, "Avast CleanUp", "Free Time", "M", 5.36, "Avast", new=9, old=5, auto_refund=True),
    _c(46110, "Avast CleanUp", "Free Time", "W", 0.0, "Avast", upgrade_to=46109, new=3, old=1),
    _c(46349, "Smile & Learn", "Kids", "D", 0.0, "Smile and Learn", new=1),
    _c(46350, "Smile & Learn", "Kids", "W", 1.99, "Smile and Learn", new=1, old=1),
    _c(80017, "Total Fitness", "Music", "M", 7.99, "Total Fitness SL", new=2, old=1, auto_refund=True),
    _c(41181, "Slow Life", "Beauty and Health", "W", 2.06, "Slow Life Media", new=5, old=6, auto_refund=True),
    _c(41182, "Slow Life", "Beauty and Health", "W", 0.0, "Slow Life Media", upgrade_to=41181, new=2, old=1),
    _c(34409, "Juegos Icaro", "Games", "W", 1.99, "Icaro Games", new=4, old=4, auto_refund=True),
    _c(34410, "Juegos Icaro", "Games", "W", 0.0, "Icaro Games", upgrade_to=34409, new=2, old=1),
    _c(44051, "E-Komics", "Kids", "W", 1.43, "Komics Digital", new=3, old=4, auto_refund=True),
    _c(44053, "E-Komics", "Kids", "W", 0.0, "Komics Digital", upgrade_to=44051, new=0.5),
    _c(43551, "Movistar Juegos", "Games", "W", 2.99, "Telefonica", new=3, old=4, auto_refund=True),
    _c(42049, "Deportes emocion", "Sports", "W", 1.49, "Emocion Media", new=2, old=4),
    _c(42051, "Deportes emocion", "Sports", "M", 5.36, "Emocion Media", old=1),
    _c(42053, "Deportes emocion", "Sports", "W", 0.0, "Emocion Media", upgrade_to=42049, new=0.5),
    _c(41329, "Fashion TV", "Light", "W", 2.99, "FTV Networks", new=1, old=4),
    _c(41331, "Fashion TV", "Free Time", "W", 1.15, "FTV Networks", old=2),
    _c(41177, "Club Belleza", "Beauty and Health", "W", 1.91, "Belleza Digital", new=1, old=5),
    _c(41179, "Club Belleza", "Beauty and Health", "W", 0.0, "Belleza Digital", upgrade_to=41177, old=0.3),
    # the four excluded services (legacy rule L5.4)
    _c(44469, "Nubico eBooks", "Nubico", "M", 9.99, "Nubico", new=1, old=2),
    _c(44471, "Nubico eBooks", "Nubico", "W", 0.0, "Nubico", upgrade_to=44469, new=0.5),
    _c(45069, "Nubico Promos", "Free Time", "M", 4.99, "Nubico", old=1),
    _c(45229, "Nubico eBooks", "Nubico", "M", 7.99, "Nubico", old=0.5),
    _c(45231, "Nubico Promos", "Free Time", "W", 0.0, "Nubico", upgrade_to=45069, old=0.2),
    _c(46449, "Challenge Arena", "Games", "W", 1.99, "Arena Esports", new=1, old=1),
    _c(46451, "Challenge Arena", "Games", "W", 0.0, "Arena Esports", upgrade_to=46449, new=0.3),
    _c(45530, "Movistar Apple Music", "Music", "M", 8.26, "Apple", new=2, old=2),
    _c(45531, "Movistar Apple Music", "Music", "T", 0.0, "Apple", upgrade_to=45530, new=1.5, old=0.5),
    _c(46129, "Movistar Apple Music", "Music", "M", 8.26, "Apple", old=0.3),
    _c(46269, "Juegos Onmo", "Games", "W", 2.99, "Onmo", new=1, old=0.5),
    _c(46271, "Juegos Onmo", "Games", "W", 0.0, "Onmo", upgrade_to=46269, new=0.5),
    _c(46273, "Juegos Onmo", "Games", "M", 6.6, "Onmo", old=0.3),
    _c(46275, "Juegos Onmo", "Games", "P", 2.99, "Onmo", ppd=0.3),
    _c(46277, "Juegos Onmo", "Games", "W", 1.49, "Onmo", old=0.2),
    # legacy services: renewals of an old base, no activations any more
    _c(893, "La Gruta del Sexo", "Light", "W", 2.99, "2dayuk", old=3),
    _c(4091, "La Gruta del Sexo", "Light", "P", 2.5, "2dayuk", ppd=1),
    _c(3109, "Chat Amigos", "Free Time", "M", None, "Mobile Chat SL", estado="Baja"),
    _c(3111, "Mensajeria Plus", "Free Time", "M", None, "Mobile Chat SL", estado="Baja"),
    _c(5645, "¿Quedamos?", "Free Time", "M", None, "Mobile Chat SL", estado="Baja"),
    _c(9999, None, None, None, None, None, estado=""),
    _c(10004, "Noche Club", "Light", "M", 2.0, "2dayuk", old=0.5),
    _c(10487, "Club música", "Music", "W", 0.99, "Sonido Movil", old=1),
    _c(10489, "Club música", "Music", "P", 0.99, "Sonido Movil", ppd=0.5),
    _c(10494, "Logos Club", "Images", "M", 2.0, "Imagen Movil", old=0.3),
    _c(17601, "Tonos Top", "Music", "W", 1.99, "Sonido Movil", old=1),
    _c(17603, "Karaoke Club", "Music", "M", 8.18, "Sonido Movil", old=1),
    _c(17605, "Música Latina", "Music", "W", 1.15, "Sonido Movil", old=0.5),
    _c(18965, "Juegos Gameloft ", "Games", "W", 3.0, "Gameloft", old=0.5),
    _c(18967, "Juegos Gameloft ", "Games", "P", 3.0, "Gameloft", ppd=0.5),
    _c(21301, "Horóscopo Diario", "Free Time", "W", 1.43, "Astro Media", old=1),
    _c(21303, "Chistes y Más", "Free Time", "W", 0.95, "Humor Movil", old=0.5),
    _c(21305, "Trucos Movil", "Free Time", "W", 1.15, "Humor Movil", old=0.5),
    _c(21401, " iTrip Viajes y +", "Free Time", "W", 1.5, "iTrip", old=0.5),
    _c(21403, " iTrip Viajes y +", "Free Time", "M", 5.0, "iTrip", old=0.3),
    _c(21405, " iTrip Viajes y +", "Free Time", "W", 0.0, "iTrip", upgrade_to=21401, old=0.2),
    _c(21407, " iTrip Viajes y +", "Free Time", "P", 2.0, "iTrip", ppd=0.2),
    _c(21501, "Cocina Fácil", "Free Time", "W", 1.49, "Recetas Movil", old=0.5),
    _c(22201, "Fondos HD", "Images", "W", 1.15, "Imagen Movil", old=0.5),
    _c(22203, "Fondos HD", "Images", "P", 1.5, "Imagen Movil", ppd=0.5),
    _c(22205, "Animaciones HD", "Images", "P", 2.0, "Imagen Movil", ppd=0.3),
    _c(23301, "Chicas Top", "Light", "W", 2.99, "2dayuk", old=2),
    _c(23303, "Videos Calientes", "Light", "W", 2.47, "2dayuk", old=2),
    _c(23305, "Hot Club", "Light", "W", 1.99, "Hot Media", old=1.5),
    _c(23307, "Canal Luna", "Light", "M", 6.0, "Hot Media", old=1),
    _c(23309, "Noches Locas", "Light", "W", 2.99, "Hot Media", old=1.5),
    _c(23311, "Modelos HD", "Light", "W", 2.06, "Hot Media", old=1),
    _c(23313, "Amateur Club", "Light", "W", 1.64, "2dayuk", old=1),
    _c(23315, " Private XXX", "Light", "W", 2.5, "Private Media", old=1),
    _c(23317, "Tf Plana Videos ", "Light", "W", 2.0, "2dayuk", old=1),
    _c(23319, "Susc Cam Oculta ", "Light", "W", 2.47, "Hot Media", old=1),
    _c(23321, "Descarga Video Hot", "Light", "P", 3.0, "Hot Media", ppd=1),
    _c(23323, "Fantasía Adultos", "Light", "M", 4.0, "Hot Media", old=0.5),
    _c(23325, "Hot Club", "Light", "W", 0.0, "Hot Media", upgrade_to=23305, old=0.3),
    _c(23327, "Chicas Top", "Light", "P", 1.5, "2dayuk", ppd=0.5),
    _c(30714, "TP Seman EA 0,99e", "Games", "W", 0.99, "Electronic Arts", old=2),
    _c(30716, "TP Seman EA 1,99e", "Games", "W", 1.99, "Electronic Arts", old=1),
    _c(30718, "TP Mensual EA 4,99e", "Games", "M", 4.99, "Electronic Arts", old=0.5),
    _c(32668, "Descarga 0,99 eur", "Games", "P", 0.99, "Electronic Arts", ppd=2),
    _c(32670, "Descarga 1,99 eur", "Games", "P", 1.99, "Electronic Arts", ppd=1.5),
    _c(32672, "Descarga 2,99 eur", "Games", "P", 2.99, "Electronic Arts", ppd=1),
    _c(38601, "Go Play", "Games", "W", 2.99, "Go Play Games", old=2),
    _c(38603, "Go Play", "Games", "W", 1.99, "Go Play Games", old=1),
    _c(38605, "Go Play", "Games", "W", 0.0, "Go Play Games", upgrade_to=38601, old=0.5),
    _c(38607, "Go Play", "Games", "M", 6.6, "Go Play Games", old=0.5),
    _c(38687, "Extra juegos", "Games", "P", 14.99, "Extra Games", ppd=1.5),
    _c(38689, "Extra juegos", "Games", "P", 4.99, "Extra Games", ppd=1),
    _c(38691, "Extra juegos", "Games", "W", 2.47, "Extra Games", old=1),
    _c(39011, "Arcade Retro", "Games", "W", 1.49, "Retro Games", old=1),
    _c(39013, "Puzzle Manía", "Games", "W", 1.99, "Retro Games", old=1),
    _c(40201, "El Kiosko y Más", "News", "M", 9.99, "Kiosko Digital", old=1),
    _c(40203, "El Kiosko y Más", "News", "M", 14.99, "Kiosko Digital", old=0.5),
    _c(40205, "El Kiosko y Más", "News", "M", 20.83, "Kiosko Digital", old=0.3),
    _c(40207, "El Kiosko y Más", "News", "M", 4.99, "Kiosko Digital", old=0.5),
    _c(40209, "El Kiosko y Más", "News", "P", 1.99, "Kiosko Digital", ppd=0.5),
    _c(40211, "El Kiosko y Más", "News", "P", 2.99, "Kiosko Digital", ppd=0.3),
    _c(40213, "El Kiosko y Más", "News", "W", 1.49, "Kiosko Digital", old=0.5),
    _c(40215, "El Kiosko y Más", "News", "W", 0.0, "Kiosko Digital", upgrade_to=40213, old=0.2),
    _c(40301, "El Tiempo Plus", "News", "W", 0.95, "Meteo Movil", old=0.5),
    _c(42101, "Fútbol Total", "Sports", "W", 1.99, "Deporte Movil", old=1),
    _c(42103, "Motor Extreme", "Sports", "W", 1.64, "Deporte Movil", old=0.5),
    _c(44101, "Cuentos Mágicos", "Kids", "W", 1.49, "Kids Media", old=1),
    _c(44103, "Dibujos Club", "Kids", "W", 0.95, "Kids Media", old=1),
    _c(44105, "Aula 365", "Kids", "W", 2.99, "Aula 365 SL", old=1),
    _c(44107, "Aula 365", "Education", "M", 5.0, "Aula 365 SL", old=0.5),
    _c(44201, "Inglés Fácil", "Education", "W", 1.99, "Idiomas Movil", old=1),
    _c(41201, "Dieta y Salud", "Beauty and Health", "W", 1.64, "Salud Movil", old=1),
    _c(41203, "Yoga en Casa", "Beauty and Health", "M", 7.68, "Salud Movil", old=1),
    # CPCs seen in transactions but missing from the master (like 99200 in the legacy)
    _c(99200, "Servicio 99200", "Light", "W", 1.99, "2dayuk", new=0.3, old=1, in_master=False),
    _c(47311, "Promo Navidad", "Free Time", "W", 1.49, "Tribuu Media", new=0.5, in_master=False),
    _c(47313, "Descarga Promo", "Games", "P", 0.99, "Electronic Arts", ppd=0.3, in_master=False),
)

# "CPC to upgrade" holds text on a couple of rows of the real workbook; coerced to NA.
# (The real workbook also holds one CPC twice, legacy rule L4.4; the simulated one does not, so a
# demo or benchmark warns of nothing: tests add the duplicate where they need it.)
_NA_UPGRADE_CELLS = frozenset({43551, 10487})

MASTER_HEADER = ("CPC", "CPC to upgrade", "APP_ID", "Short Description", "Is a CVAS CPC?", "TME Category",
                 "Content Provider", "Estado", "Service Name", "Subscription Model", "Price", "% VAT")


@dataclass(frozen=True)
class SimulationInfo:
    """What `simulate` wrote: the Nova database, the Excel master, the exclusion list, and row counts."""

    database: Path
    master_xlsx: Path
    exclusions: Path
    start: dt.date
    end: dt.date                 # the last simulated day (inclusive)
    seed: int
    new_per_day: int
    rows: dict[str, int] = field(default_factory=dict)   # table name -> rows

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


# -- helpers -----------------------------------------------------------------------------

def _one_per_day(rng: np.random.Generator, days: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One random index among `mask` for every day that has a candidate (sorted)."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return idx
    offset = days[idx] - days[idx].min()
    if offset.max() < 2**15:
        offset = offset.astype(np.int16)    # a stable sort of 16-bit keys is a radix sort
    by_day = np.argsort(offset, kind="stable")
    counts = np.bincount(offset)
    present = np.flatnonzero(counts)
    first = (np.cumsum(counts) - counts)[present]
    pick = first + np.floor(rng.random(present.size) * counts[present]).astype(np.int64)
    return np.sort(idx[by_day[pick]])


def _stable_order(key: np.ndarray) -> np.ndarray:
    """The stable ascending order of non-negative int64 keys (ties keep their positions)."""
    pos_bits = max(1, int(key.size).bit_length())
    if key.size and int(key.max()).bit_length() + pos_bits <= 62:
        # unique keys: the position in the low bits makes any sort stable and fast
        packed = np.sort((key << pos_bits) | np.arange(key.size, dtype=np.int64))
        return packed & ((1 << pos_bits) - 1)
    return np.argsort(key, kind="stable")


def _unique_draw(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """`n` distinct integers in [low, high), drawn uniformly (duplicates are drawn again)."""
    values = rng.integers(low, high, n, dtype=np.int64)
    while True:
        _, first = np.unique(values, return_index=True)
        if first.size == n:
            return values
        again = np.ones(n, dtype=bool)
        again[first] = False
        values[again] = rng.integers(low, high, int(again.sum()), dtype=np.int64)


def _ceil_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -((-a) // b)


def _ts(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds as an Arrow timestamp[s] array (null where not `valid`)."""
    mask = None if valid is None else ~valid
    return pa.array(seconds.astype(np.int64), type=pa.timestamp("s"), mask=mask)


def _ints(values: np.ndarray, valid: np.ndarray | None = None, type_=pa.int64()) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(values, type=type_, mask=mask)


# -- the generator -----------------------------------------------------------------------

class _Catalogue:
    """The catalogue as numpy columns indexed by catalogue position."""

    def __init__(self, entries: tuple[CatalogueCpc, ...]) -> None:
        self.entries = entries
        self.cpc = np.array([e.cpc for e in entries], dtype=np.int64)
        self.period = np.array([e.period for e in entries], dtype=np.int64)
        self.cents = np.array([-1 if e.price is None else round(e.price * 100) for e in entries], dtype=np.int64)
        self.free = self.cents == 0
        self.auto_refund = np.array([e.auto_refund for e in entries])
        position = {e.cpc: i for i, e in enumerate(entries)}
        self.upgrade = np.array([position[e.upgrade_to] if isinstance(e.upgrade_to, int) else -1
                                 for e in entries], dtype=np.int64)
        self.p_new = self._weights([e.new for e in entries])
        self.p_old = self._weights([e.old for e in entries])
        self.p_ppd = self._weights([e.ppd for e in entries])
        subscribable = (self.period > 0) & (self.cents >= 0)
        assert not ((self.p_new + self.p_old) > 0)[~subscribable].any(), "weights on non-subscription CPCs"
        assert not (self.p_ppd > 0)[self.period != 0].any(), "PPD weight on a subscription CPC"

    @staticmethod
    def _weights(values: list[float]) -> np.ndarray:
        w = np.array(values, dtype=float)
        return w / w.sum()


def _lifecycles(cat: _Catalogue, r_subs: np.random.Generator, r_life: np.random.Generator, w0: int, w1: int,
                new_per_day: int, steady: bool) -> dict:
    """Subscriptions started over [w0 - HISTORY_DAYS, w1) and not ended before the window:
    their CPCs, trial upgrades, paid segments, renewal periods and ends."""
    day_nums = np.arange(w0 - HISTORY_DAYS, w1, dtype=np.int64)
    # steady: no weekday pattern either, so any two days of the window carry the same volume
    weekday = np.ones(7) if steady else WEEKDAY_FACTOR
    per_day = r_subs.poisson(new_per_day * weekday[(day_nums + 3) % 7])
    sday = np.repeat(day_nums, per_day)
    n = sday.size
    stod = r_subs.integers(0, DAY_S, n)
    # steady: one offer throughout, so the base renewing in the window neither shrinks nor
    # changes its mix (the default switches from the legacy offer, a base that decays)
    current = np.ones(sday.size, dtype=bool) if steady else sday >= w0 - CURRENT_OFFER_DAYS
    ncat = len(CATALOGUE)
    cpc1 = np.where(current, r_subs.choice(ncat, n, p=cat.p_new), r_subs.choice(ncat, n, p=cat.p_old))
    free = cat.free[cpc1]
    target = np.where(free, cat.upgrade[cpc1], -1)
    converted = (target >= 0) & (r_life.random(n) < TRIAL_CONVERSION)
    paid_idx = np.where(converted, target, np.where(free, -1, cpc1))
    has_paid = paid_idx >= 0
    # trial end (free CPCs): upgrade day, or the deactivation day when not converted
    u_day = sday + cat.period[cpc1]
    u_tod = r_life.integers(0, DAY_S - 120, n)
    ps_day = np.where(converted, u_day, sday)          # paid segment start
    ps_tod = np.where(converted, u_tod, stod)
    p = np.where(has_paid, cat.period[np.maximum(paid_idx, 0)], 1)
    life = np.where(r_life.random(n) < SHORT_SHARE, r_life.exponential(SHORT_MEAN, n),
                    r_life.exponential(LONG_MEAN, n))
    cnr_first = has_paid & (r_life.random(n) < CANCEL_FIRST)
    life_days = np.maximum(1, np.ceil(life).astype(np.int64))
    ed = np.where(cnr_first, ps_day + np.maximum(1, _ceil_div(life_days, p)) * p, ps_day + life_days)
    ed = np.where(has_paid, ed, u_day)
    etod = r_life.integers(0, DAY_S, n)
    # the CNR falls after the last renewal and before the DCT at the next renewal date
    cnr_day = np.maximum(ps_day, ed - 1 - np.floor(r_life.random(n) * np.maximum(p - 1, 1)).astype(np.int64))
    cnr_tod = r_life.integers(0, DAY_S, n)
    cnr_tod = np.where(cnr_day == ps_day, np.minimum(np.maximum(cnr_tod, ps_tod + 60), DAY_S - 1), cnr_tod)
    mode_idx = r_life.choice(len(_CNR_MODES), n, p=_CNR_MODE_P)
    chan_act = r_life.choice(_ACT_CHANNELS[0], n, p=_ACT_CHANNELS[1])
    chan_end = np.where(
        cnr_first, np.array([m[1] for m in _CNR_MODES])[mode_idx],
        np.where(has_paid, r_life.choice(_DCT_CHANNELS[0], n, p=_DCT_CHANNELS[1]),
                 r_life.choice(_TRIAL_END_CHANNELS[0], n, p=_TRIAL_END_CHANNELS[1])))
    delay = r_life.integers(1, 180, n)

    # keep what the window can see: subscriptions not ended before it
    keep = ed >= w0
    (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, u_tod, ps_day, ps_tod, p, cnr_first, ed, etod,
     cnr_day, cnr_tod, mode_idx, chan_act, chan_end, delay) = (
        a[keep] for a in (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, u_tod, ps_day, ps_tod, p,
                          cnr_first, ed, etod, cnr_day, cnr_tod, mode_idx, chan_act, chan_end, delay))
    n = sday.size
    s_ts = sday * DAY_S + stod
    u_ts = u_day * DAY_S + u_tod
    e_ts = ed * DAY_S + etod
    last_idx = np.where(has_paid, paid_idx, cpc1)

    return {k: v for k, v in locals().items() if k in _LIFE}


_LIFE = frozenset({"sday", "stod", "cpc1", "converted", "paid_idx", "has_paid", "u_day", "u_tod", "ps_day", "ps_tod",
                   "p", "cnr_first", "ed", "etod", "cnr_day", "cnr_tod", "mode_idx", "chan_act", "chan_end", "delay",
                   "n", "s_ts", "u_ts", "e_ts", "last_idx"})


def _ppd_purchases(cat: _Catalogue, r_ppd: np.random.Generator, w0: int, w1: int, days: int,
                   new_per_day: int) -> dict:
    """Pay-per-download purchases (one-offs), appended as pseudo-subscriptions."""
    ncat = len(CATALOGUE)
    win_days = np.arange(w0, w1, dtype=np.int64)
    n_ppd_day = np.maximum(2, r_ppd.poisson(PPD_BASE + new_per_day * PPD_PER_NEW, days))
    ppd_day = np.repeat(win_days, n_ppd_day)
    m = ppd_day.size
    ppd_tod = r_ppd.integers(0, DAY_S, m)
    ppd_cpc = r_ppd.choice(ncat, m, p=cat.p_ppd)
    ppd_chan = r_ppd.choice(_ACT_CHANNELS[0], m, p=_ACT_CHANNELS[1])
    ppd_null = r_ppd.random(m) < 0.3
    ppd_null[np.cumsum(n_ppd_day) - n_ppd_day] = True      # the first purchase of each day
    ppd_delay = r_ppd.integers(1, 30, m)

    return {"m": m, "ppd_day": ppd_day, "ppd_tod": ppd_tod, "ppd_cpc": ppd_cpc, "ppd_chan": ppd_chan,
            "ppd_null": ppd_null, "ppd_delay": ppd_delay}


def _identities(r_ident: np.random.Generator, n: int, m: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Users, subscription ids and campaign attributes (subscriptions, then PPD purchases)."""
    total = n + m
    n_users = max(16, int(total * 0.85))
    user = r_ident.integers(0, n_users, total)
    tm_kind = (r_ident.random(n_users) >= 0.7).astype(np.int8)           # 0: '834'+16, 1: '34'+16 digits
    tm16 = np.where((tm_kind == 0) & (r_ident.random(n_users) < 0.8),
                    _unique_draw(r_ident, n_users, 0, 10**12) * 10**4,    # many end in 0000
                    _unique_draw(r_ident, n_users, 0, 10**16))
    phone8 = _unique_draw(r_ident, n_users, 0, 10**8)                       # msisdn '346' + 8 digits
    long_id = r_ident.random(total) < 0.4
    sub_id = np.where(long_id, 8_340_000_000_000_000_000, 343_900_000_000_000_000) + np.where(
        long_id, _unique_draw(r_ident, total, 0, 10**15), _unique_draw(r_ident, total, 0, 10**14))
    ident = {
        "sub": np.arange(total, dtype=np.int64),
        "subscription_id": sub_id,
        "user_idx": user,
        "tm_kind": tm_kind[user],
        "tm16": tm16[user],
        "phone8": phone8[user],
        "variant": r_ident.integers(0, 4, total).astype(np.int8),
        "camp": r_ident.choice(len(_CAMPAIGNS), total, p=_CAMPAIGN_P).astype(np.int8),
        "has_camp": r_ident.random(total) < 0.7,
        "prov": r_ident.integers(0, len(_PROVIDERS), total).astype(np.int8),
        "has_prov": r_ident.random(total) < 0.5,
        "med": r_ident.integers(0, len(_MEDIA), total).astype(np.int8),
        "has_medium": r_ident.random(total) < 0.5,
        "tefcamp": r_ident.integers(1000, 10000, total),
        "has_tefcamp": r_ident.random(total) < 0.4,
    }

    return ident, tm_kind, tm16, phone8


def _events(cat: _Catalogue, life: dict, ppd: dict, r_events: np.random.Generator, w0: int, w1: int) -> dict:
    """The fact events in the window: ACT, upgrades, renewals, DCT and PPD, as columns."""
    (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, ps_day, p, ed, chan_act, chan_end, delay, n, s_ts,
     u_ts, e_ts, last_idx) = (life[k] for k in (
        "sday", "stod", "cpc1", "converted", "paid_idx", "has_paid", "u_day", "ps_day", "p", "ed", "chan_act",
        "chan_end", "delay", "n", "s_ts", "u_ts", "e_ts", "last_idx"))
    m, ppd_day, ppd_tod, ppd_cpc, ppd_chan, ppd_delay = (ppd[k] for k in (
        "m", "ppd_day", "ppd_tod", "ppd_cpc", "ppd_chan", "ppd_delay"))
    blocks: list[dict[str, np.ndarray]] = []

    def add(mask, ttype, cat_idx, chan, tlog, req, nxt=None, cents=None):
        idx = np.flatnonzero(mask)
        k = idx.size

        def take(v, fill):
            if v is None:
                return np.full(k, fill, dtype=np.int64)
            return np.asarray(v)[idx] if np.ndim(v) else np.full(k, v, dtype=np.int64)
        blocks.append({
            "sub": idx, "ttype": np.full(k, ttype, dtype=np.int8), "cat": take(cat_idx, -1),
            "chan": take(chan, -1), "tlog": take(tlog, -1), "req": take(req, -1),
            "nxt": take(nxt, -1), "cents": take(cents, -1),
        })

    in_win = lambda d: (d >= w0) & (d < w1)  # noqa: E731
    req_s = s_ts - delay
    # ACT: a new subscription (paid, or a free trial with rev 0)
    add(in_win(sday), 1, cpc1, chan_act, s_ts, req_s,
        s_ts + cat.period[cpc1] * DAY_S, cat.cents[cpc1])
    # upgrade: ACT on the paid CPC and DCT on the free one, both channel UPGRADE, same day
    up_req = u_ts - delay
    add(converted & in_win(u_day), 1, paid_idx, UPGRADE_CHANNEL, u_ts, up_req,
        u_ts + p * DAY_S, cat.cents[np.maximum(paid_idx, 0)])
    add(converted & in_win(u_day), 3, cpc1, UPGRADE_CHANNEL, u_ts + 1 + (delay % 60), req_s)
    # RENO on the paid segment: every period on the anniversary day, before the end day
    k_lo = np.maximum(1, _ceil_div(w0 - ps_day, p))
    k_hi = np.minimum((ed - 1 - ps_day) // p, (w1 - 1 - ps_day) // p)
    cnt = np.where(has_paid, np.maximum(0, k_hi - k_lo + 1), 0)
    r_sub = np.repeat(np.arange(n), cnt)
    r_k = k_lo[r_sub] + np.arange(r_sub.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    r_day = ps_day[r_sub] + r_k * p[r_sub]
    # most renewals run in the night batch, the rest over the day
    r_tod = np.where(r_events.random(r_sub.size) < 0.55, r_events.integers(0, 6 * 3600, r_sub.size),
                     r_events.integers(0, DAY_S, r_sub.size))
    boundary = r_events.random(r_sub.size) < BOUNDARY_RATE
    r_tod = np.where(boundary, np.where(r_events.random(r_sub.size) < 0.5, 0, DAY_S - 1), r_tod)
    midnight = _one_per_day(r_events, r_day, np.ones(r_sub.size, dtype=bool))
    r_tod[midnight] = 0
    not_midnight = np.ones(r_sub.size, dtype=bool)
    not_midnight[midnight] = False
    r_tod[_one_per_day(r_events, r_day, not_midnight)] = DAY_S - 1
    r_tlog = r_day * DAY_S + r_tod
    reno_req = np.where(converted, up_req, req_s)[r_sub]
    blocks.append({
        "sub": r_sub, "ttype": np.full(r_sub.size, 2, dtype=np.int8), "cat": paid_idx[r_sub],
        "chan": np.where(converted, UPGRADE_CHANNEL, chan_act)[r_sub], "tlog": r_tlog, "req": reno_req,
        "nxt": r_tlog + p[r_sub] * DAY_S, "cents": cat.cents[paid_idx[r_sub]],
    })
    # DCT: the end of the subscription (after a CNR, at the next renewal date)
    add(in_win(ed), 3, last_idx, chan_end, e_ts, np.where(converted, up_req, req_s))
    # PPD: one-off purchases
    ppd_tlog = ppd_day * DAY_S + ppd_tod
    blocks.append({
        "sub": n + np.arange(m), "ttype": np.full(m, 4, dtype=np.int8), "cat": ppd_cpc, "chan": ppd_chan,
        "tlog": ppd_tlog, "req": ppd_tlog - ppd_delay, "nxt": np.full(m, -1, dtype=np.int64),
        "cents": cat.cents[ppd_cpc],
    })
    ev = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    blocks.clear()
    return ev


def _fact_table(ev: dict, n: int, ppd: dict, cpc1: np.ndarray, r_dup: np.random.Generator, lo_s: int) -> tuple[dict, np.ndarray]:
    """The fact table rows in time order, with a few exact duplicates; and each identity's first CPC."""
    ppd_null, ppd_cpc = ppd["ppd_null"], ppd["ppd_cpc"]
    n_ev = ev["sub"].size
    ppd_rows = ev["sub"] >= n
    null_sub = np.zeros(n_ev, dtype=bool)
    null_sub[ppd_rows] = ppd_null[ev["sub"][ppd_rows] - n]
    # the table is stored in time order (then type, then generation order: deterministic)
    order = _stable_order((ev["tlog"] - lo_s) * 8 + ev["ttype"])
    # exact duplicates: a few rows inserted twice, next to their original
    n_dup = max(1, round(n_ev * DUPLICATE_RATE)) if n_ev else 0
    rows = order[np.sort(np.concatenate([np.arange(n_ev), r_dup.choice(n_ev, n_dup, replace=False)]))]
    cat_a = np.concatenate([cpc1, ppd_cpc])        # per identity row: its first CPC ...
    fact = {
        "sub": ev["sub"][rows].astype(np.int32),
        "slot": (ev["cat"][rows] != cat_a[ev["sub"][rows]]),   # ... or its upgrade CPC (slot 1)
        "cat": ev["cat"][rows],
        "ttype": ev["ttype"][rows],
        "chan": ev["chan"][rows].astype(np.int32),
        "tlog": ev["tlog"][rows],
        "req": ev["req"][rows],
        "nxt": ev["nxt"][rows],
        "cents": ev["cents"][rows],
        "null_sub": null_sub[rows],
    }
    del rows, order
    return fact, cat_a



def _cancellations(cat: _Catalogue, life: dict, w0: int, w1: int) -> dict:
    """CNR: cancellations announced before the final DCT."""
    cnr_first, cnr_day, cnr_tod, paid_idx, mode_idx = (life[k] for k in (
        "cnr_first", "cnr_day", "cnr_tod", "paid_idx", "mode_idx"))
    in_win = lambda d: (d >= w0) & (d < w1)  # noqa: E731
    cnr_mask = cnr_first & in_win(cnr_day)
    c_sub = np.flatnonzero(cnr_mask)
    c_ts = cnr_day[c_sub] * DAY_S + cnr_tod[c_sub]
    c_order = np.lexsort((c_sub, c_ts))
    cnr = {"sub": c_sub[c_order], "ts": c_ts[c_order], "cpc": cat.cpc[paid_idx[c_sub[c_order]]],
           "mode": mode_idx[c_sub[c_order]].astype(np.int8)}
    return cnr


def _refunds(cat: _Catalogue, ev: dict, r_refund: np.random.Generator) -> dict:
    """Refunds: several rows per refunded charge, the same day."""
    charge = np.flatnonzero(((ev["ttype"] == 1) | (ev["ttype"] == 2)) & (ev["cents"] > 0))
    ch_day = ev["tlog"][charge] // DAY_S
    ch_auto = cat.auto_refund[ev["cat"][charge]]
    chosen = r_refund.random(charge.size) < REFUND_RATE
    # kind per refunded charge: 0 regular, 1 automatic, 2 both (same subscription, same day)
    u = r_refund.random(charge.size)
    kind = np.where(ch_auto, np.where(u < 0.6, 1, np.where(u < 0.95, 0, 2)), 0)
    both = _one_per_day(r_refund, ch_day, ch_auto)
    chosen[both] = True
    kind[both] = 2
    g = np.flatnonzero(chosen)
    g_kind = kind[g]
    no_sbn_group = np.zeros(g.size, dtype=bool)
    no_sbn_group[_one_per_day(r_refund, ch_day[g], g_kind == 0)] = True
    n_reg = np.where(g_kind != 1, 1 + r_refund.poisson(4.5, g.size), 0)
    n_auto = np.where(g_kind != 0, 1 + r_refund.poisson(0.3, g.size), 0)
    rf_g = np.concatenate([np.repeat(np.arange(g.size), n_reg), np.repeat(np.arange(g.size), n_auto)])
    rf_auto = np.concatenate([np.zeros(int(n_reg.sum()), dtype=bool), np.ones(int(n_auto.sum()), dtype=bool)])
    ev_i = charge[g[rf_g]]
    k = rf_g.size
    tod = ev["tlog"][ev_i] % DAY_S
    rf_ts = ev["tlog"][ev_i] + np.floor(r_refund.random(k) * (DAY_S - tod)).astype(np.int64)
    rf_cents = cat.cents[ev["cat"][ev_i]]
    rf_cents = np.where(r_refund.random(k) < 0.05, rf_cents // 2, rf_cents)   # a few partial refunds
    rf_no_sbn = (r_refund.random(k) < 0.02) | (no_sbn_group[rf_g] & ~rf_auto)
    rf_order = np.lexsort((rf_auto, rf_g, rf_ts))
    refund = {
        "sub": ev["sub"][ev_i][rf_order], "cpc": cat.cpc[ev["cat"][ev_i]][rf_order], "ts": rf_ts[rf_order],
        "cents": rf_cents[rf_order], "auto": rf_auto[rf_order], "no_sbn": rf_no_sbn[rf_order],
        "reason": r_refund.integers(0, len(_REFUND_REASONS), k)[rf_order].astype(np.int8),
        "auto_text": r_refund.integers(0, len(_AUTO_TEXTS), k)[rf_order].astype(np.int8),
        "ticket": r_refund.integers(100_000, 1_000_000, k)[rf_order],
    }
    return refund


def _segments(cat: _Catalogue, life: dict, lo_s: int, hi_s: int) -> dict:
    """The truth: subscription segments alive in the window."""
    n, converted, cpc1, paid_idx, s_ts, u_ts, e_ts, chan_act = (life[k] for k in (
        "n", "converted", "cpc1", "paid_idx", "s_ts", "u_ts", "e_ts", "chan_act"))
    # first segment: the paid subscription, or the free trial up to its end
    a_end = np.where(converted, u_ts, e_ts)
    seg_sub = np.concatenate([np.arange(n), np.flatnonzero(converted)])
    seg_cat = np.concatenate([cpc1, paid_idx[converted]])
    seg_start = np.concatenate([s_ts, u_ts[converted]])
    seg_end = np.concatenate([a_end, e_ts[converted]])
    seg_chan = np.concatenate([chan_act, np.full(int(converted.sum()), UPGRADE_CHANNEL)])
    alive = (seg_end > lo_s) & (seg_start < hi_s)
    seg_order = np.lexsort((seg_start[alive], seg_sub[alive]))
    segments = {
        "sub": seg_sub[alive][seg_order], "cpc": cat.cpc[seg_cat[alive]][seg_order],
        "start": seg_start[alive][seg_order], "end": seg_end[alive][seg_order],
        "chan": seg_chan[alive][seg_order], "cents": cat.cents[seg_cat[alive]][seg_order],
    }
    return segments


def _exclusion_list(ident: dict, ev: dict, lo_s: int, tm_kind: np.ndarray, tm16: np.ndarray, phone8: np.ndarray,
                    r_excl: np.random.Generator) -> list[tuple[str, str]]:
    """A handful of users with transactions on the first day."""
    first_day_users = np.unique(ident["user_idx"][ev["sub"][ev["tlog"] < lo_s + DAY_S]])
    pick = np.sort(r_excl.choice(first_day_users, min(8, first_day_users.size), replace=False))
    exclusions = []
    for i, u_i in enumerate(pick):
        prefix = "834" if tm_kind[u_i] == 0 else "34"
        tmuserid = "" if i % 3 == 1 else f"{prefix}{tm16[u_i]:016d}"
        exclusions.append((f"346{phone8[u_i]:08d}", tmuserid))
    order_excl = r_excl.permutation(len(exclusions))
    return [exclusions[i] for i in order_excl]


def _generate(start: dt.date, days: int, new_per_day: int, seed: int, steady: bool = False) -> dict:
    """All simulated rows as numpy/Arrow columns (no strings yet: DuckDB formats those)."""
    cat = _Catalogue(CATALOGUE)
    (r_subs, r_life, r_ident, r_events, r_refund, r_ppd, r_dup, r_excl) = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8))
    w0 = (start - _EPOCH).days
    w1 = w0 + days
    lo_s, hi_s = w0 * DAY_S, w1 * DAY_S
    life = _lifecycles(cat, r_subs, r_life, w0, w1, new_per_day, steady)
    n = life["n"]
    ppd = _ppd_purchases(cat, r_ppd, w0, w1, days, new_per_day)
    ident, tm_kind, tm16, phone8 = _identities(r_ident, n, ppd["m"])
    ev = _events(cat, life, ppd, r_events, w0, w1)
    fact, cat_a = _fact_table(ev, n, ppd, life["cpc1"], r_dup, lo_s)
    cnr = _cancellations(cat, life, w0, w1)
    refund = _refunds(cat, ev, r_refund)
    segments = _segments(cat, life, lo_s, hi_s)
    exclusions = _exclusion_list(ident, ev, lo_s, tm_kind, tm16, phone8, r_excl)
    converted, paid_idx, cpc1 = life["converted"], life["paid_idx"], life["cpc1"]
    return {
        "cat": cat, "ident": ident, "fact": fact, "cnr": cnr, "refund": refund, "segments": segments,
        "exclusions": exclusions, "lo_s": lo_s, "hi_s": hi_s,
        "cat_a": cat_a, "cat_b": np.concatenate([np.where(converted, paid_idx, cpc1), ppd["ppd_cpc"]]),
    }


# -- writing -----------------------------------------------------------------------------

_INFO_PARTS = """
    'chrg_refid=346' || lpad(cast(phone8 as varchar), 8, '0') as p_ref,
    case when has_camp then 'campaign=' || campaign end as p_camp,
    case when has_prov then 'TEFProvider=' || provider end as p_prov,
    case when has_medium then 'TEFmedium=' || medium end as p_medium,
    case when has_tefcamp then 'TEFcampaign=tc' || cast(tefcamp as varchar) end as p_tefcamp
"""

# generic_act_info in four key orders; order 1 puts TEFcampaign= before campaign= (legacy rule L-D24)
_INFO = """
    case s.variant
        when 0 then concat_ws(';', s.p_ref, 'cpc=' || k.cpc, s.p_camp, s.p_prov, s.p_medium, s.p_tefcamp)
        when 1 then concat_ws(';', 'cpc=' || k.cpc, s.p_ref, s.p_tefcamp, s.p_camp, s.p_medium, s.p_prov)
        when 2 then concat_ws(';', s.p_prov, s.p_medium, s.p_tefcamp, s.p_ref, 'cpc=' || k.cpc, s.p_camp)
        else concat_ws(';', 'cpc=' || k.cpc, s.p_tefcamp, s.p_ref, s.p_prov, s.p_camp, s.p_medium)
    end
"""


def _vocab(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _write_database(path: Path, data: dict, start: dt.date, end: dt.date, days: int, seed: int,
                    new_per_day: int) -> dict[str, int]:
    # one writer thread: parallel inserts leave half-filled, poorly compressed row groups
    con = connect(str(path), threads=1)
    try:
        con.execute(load_sql("nova_schema"))
        _write_reference(con, data["cat"], start, end, days, seed, new_per_day)
        tmuserids, infos, sub_ids = _write_identities(con, data)
        _write_facts(con, data, tmuserids, infos, sub_ids)
        _write_cancellations(con, data)
        _write_refunds(con, data)
        _write_segments(con, data)
        con.execute("drop table subs")

        counts = {}
        for table in ("telefonicaes_sub_mgr_fact", "channel_dim", "delaydcttlog_v1_0_0_fact",
                      "refund_v1_0_0_fact", "sim_cpc", "sim_subscription"):
            counts[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute("checkpoint")
    finally:
        con.close()
    return counts


def _write_reference(con: duckdb.DuckDBPyConnection, cat: _Catalogue, start: dt.date, end: dt.date, days: int,
                     seed: int, new_per_day: int) -> None:
    """channel_dim, the CPC catalogue and the simulation's own parameters."""
    con.register("channels_arrow", pa.table({"channel_id": [c[0] for c in CHANNELS],
                                             "channel_desc": [c[1] for c in CHANNELS]}))
    con.execute("insert into channel_dim select * from channels_arrow order by channel_id")
    con.register("catalogue_arrow", pa.table({
        "cpc": [e.cpc for e in cat.entries],
        "content_provider": [e.provider for e in cat.entries],
        "service_name": [e.service_name for e in cat.entries],
        "tme_category": [e.tme_category for e in cat.entries],
        "subscription_model": [e.subscription_model for e in cat.entries],
        "cpc_period": [e.period for e in cat.entries],
        "price": [None if e.price is None else f"{e.price:.2f}" for e in cat.entries],
        "in_master": [e.in_master for e in cat.entries],
    }))
    con.execute("insert into sim_cpc select * from catalogue_arrow order by cpc")
    con.unregister("channels_arrow")
    con.unregister("catalogue_arrow")
    con.execute("insert into sim_meta values (?, ?, ?, ?, ?, ?)", [start, end, days, seed, new_per_day, GENERATOR])


def _write_identities(con: duckdb.DuckDBPyConnection, data: dict) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """The temp table `subs` (formatted identities); returns the tmuserids, the generic_act_info
    of each identity's two CPC slots and the subscription ids, in identity order."""
    cat: _Catalogue = data["cat"]
    ident = pa.table({k: v for k, v in data["ident"].items() if k != "user_idx"})
    con.register("ident_arrow", ident)
    con.execute(f"""
        create temp table subs as
        select
            sub, subscription_id,
            case tm_kind when 0 then '834' else '34' end || lpad(cast(tm16 as varchar), 16, '0') as tmuserid,
            '346' || lpad(cast(phone8 as varchar), 8, '0') as phone,
            variant,
            {_INFO_PARTS}
        from (
            select *,
                {_vocab(_CAMPAIGNS)}[camp + 1] as campaign,
                {_vocab(_PROVIDERS)}[prov + 1] as provider,
                {_vocab(_MEDIA)}[med + 1] as medium
            from ident_arrow
        )
    """)
    con.unregister("ident_arrow")

    # per identity: tmuserid, and generic_act_info for its first (slot 0) and upgrade
    # (slot 1) CPC; the events then point into these as Arrow dictionaries (no join)
    con.register("slots_arrow", pa.table({
        "sub": data["ident"]["sub"], "cpc_a": cat.cpc[data["cat_a"]], "cpc_b": cat.cpc[data["cat_b"]]}))
    tmuserids = con.execute("select tmuserid from subs order by sub").fetch_arrow_table().column(0).combine_chunks()
    infos = con.execute(f"""
        select {_INFO} as info
        from subs as s
        join (select sub, 0 as slot, cast(cpc_a as varchar) as cpc from slots_arrow
              union all select sub, 1 as slot, cast(cpc_b as varchar) as cpc from slots_arrow) as k on s.sub = k.sub
        order by k.sub, k.slot
    """).fetch_arrow_table().column(0).combine_chunks()
    sub_ids = con.execute("select subscription_id from subs order by sub").fetch_arrow_table().column(0).to_numpy()
    con.unregister("slots_arrow")
    return tmuserids, infos, sub_ids


def _write_facts(con: duckdb.DuckDBPyConnection, data: dict, tmuserids: pa.Array, infos: pa.Array,
                 sub_ids: np.ndarray) -> None:
    """telefonicaes_sub_mgr_fact, in the generated row order."""
    f = data["fact"]
    events = pa.table({
        "msisdn": pa.DictionaryArray.from_arrays(pa.array(f["sub"], pa.int32()), tmuserids),
        "generic_act_info": pa.DictionaryArray.from_arrays(
            pa.array(f["sub"] * 2 + f["slot"], pa.int32()), infos),
        "trans_type_id": f["ttype"].astype(np.int32),
        "channel_id": f["chan"],
        "tlog_ts": _ts(f["tlog"]),
        "request_ts": _ts(f["req"]),
        "next_charging_date": _ts(f["nxt"], f["nxt"] >= 0),
        "subscription_id": _ints(sub_ids[f["sub"]], ~f["null_sub"]),
        "cents": _ints(f["cents"], f["cents"] >= 0),
    })
    con.register("events_arrow", events)
    # a plain projection keeps the Arrow row order (time order, duplicates adjacent)
    con.execute("""
        insert into telefonicaes_sub_mgr_fact
        select msisdn, generic_act_info, trans_type_id, channel_id, tlog_ts, request_ts,
               next_charging_date, subscription_id, cast(cents / 100 as decimal(10, 2))
        from events_arrow
    """)
    con.unregister("events_arrow")
    del events


def _write_cancellations(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    c = data["cnr"]
    con.register("cnr_arrow", pa.table({
        "seq": np.arange(c["sub"].size), "sub": c["sub"], "ts": _ts(c["ts"]), "cpc": c["cpc"],
        "mode": c["mode"]}))
    modes = _vocab(tuple(m for m, _ in _CNR_MODES))
    con.execute(f"""
        insert into delaydcttlog_v1_0_0_fact
        select e.ts, cast(s.subscription_id as varchar), s.tmuserid, e.cpc, {modes}[e.mode + 1]
        from cnr_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("cnr_arrow")


def _write_refunds(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    r = data["refund"]
    con.register("refund_arrow", pa.table({
        "seq": np.arange(r["sub"].size), **{k: v for k, v in r.items() if k != "ts"}, "ts": _ts(r["ts"])}))
    con.execute(f"""
        insert into refund_v1_0_0_fact
        select
            s.tmuserid, e.cpc, e.ts, cast(e.cents / 100 as decimal(10, 2)),
            case when e.no_sbn then '' else 'sbnId=' || cast(s.subscription_id as varchar) || ',' end
            || case when e.auto
                    then 'reason=Charge error,' || {_vocab(_AUTO_TEXTS)}[e.auto_text + 1]
                    else 'reason=' || {_vocab(_REFUND_REASONS)}[e.reason + 1]
                         || case when e.no_sbn then ',ticket=' || cast(e.ticket as varchar) else '' end
               end
        from refund_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("refund_arrow")


def _write_segments(con: duckdb.DuckDBPyConnection, data: dict) -> None:
    """sim_subscription: the truth the user-base snapshot is drawn from."""
    g = data["segments"]
    hi_s = data["hi_s"]
    # the NBS channel_desc vocabulary: CCC-CR and UPGRADE acquisitions keep theirs
    chan_names = ["ACTIVE"] * 100
    for cid, desc in CHANNELS:
        if desc in ("CCC-CR", "UPGRADE"):
            chan_names[cid] = desc
    con.register("segments_arrow", pa.table({
        "seq": np.arange(g["sub"].size), "sub": g["sub"], "cpc": g["cpc"], "start_ts": _ts(g["start"]),
        "end_ts": _ts(g["end"], g["end"] < hi_s), "chan": g["chan"].astype(np.int16), "cents": g["cents"]}))
    con.execute(f"""
        insert into sim_subscription
        select s.subscription_id, s.tmuserid, s.phone, e.cpc, e.start_ts, e.end_ts,
               {_vocab(tuple(chan_names))}[e.chan + 1], cast(e.cents / 100 as decimal(10, 2))
        from segments_arrow as e join subs as s on e.sub = s.sub
        order by e.seq
    """)
    con.unregister("segments_arrow")


def master_rows() -> list[list]:
    """The rows of the Excel master's sheet (after its header), in sheet order: one per CPC."""
    rows = []
    order = sorted((e for e in CATALOGUE if e.in_master),
                   key=lambda e: ((e.tme_category or "~"), (e.service_name or "~").strip().lower(), e.cpc))
    for i, e in enumerate(order):
        if e.cpc == 9999:
            rows.append([9999, None, None, None, None, None, None, None, None, None, None, None])
            continue
        upgrade = "N/A" if e.cpc in _NA_UPGRADE_CELLS else e.upgrade_to
        rows.append([
            e.cpc, upgrade, f"APP{1000 + i}", (e.service_name or "").strip()[:12].upper(),
            "SI" if e.estado == "Activo" else "NO", e.tme_category, e.provider, e.estado,
            e.service_name, e.subscription_model, e.price, 21,
        ])
    return rows


def _write_master(path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Hoja2"
    ws.append(list(MASTER_HEADER))
    for row in master_rows():
        ws.append(row)
    wb.properties.creator = GENERATOR
    wb.properties.created = dt.datetime(2026, 1, 15)
    wb.save(path)


def _write_exclusions(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["msisdn", "tmuserid"])
        writer.writerows(rows)


def _atomic(target: Path, write) -> None:
    """Write `target` through a temporary file in its directory, then rename it into place."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def simulate(out_dir: Path, start: dt.date, days: int, new_per_day: int = 300, seed: int = 7,
             steady: bool = False) -> SimulationInfo:
    """Simulate `days` days of Nova from `start`: writes nova.duckdb, Master_CPCs.xlsx and Users_No_Limits.csv.

    `new_per_day` (new subscriptions per day) is the one scale knob: the base alive before
    `start` (seen first as RENO) is generated from the same rate over HISTORY_DAYS, so the
    system starts near steady state. The same arguments give identical table contents.
    By default acquisitions switch from a legacy offer to the current one CURRENT_OFFER_DAYS
    before `start`, so the legacy base decays over a long window; `steady` keeps one offer
    throughout and acquisitions level over the week, so daily volumes stay level over years
    and from one day to the next (the benchmark's history).
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if new_per_day < 1:
        raise ValueError(f"new_per_day must be at least 1, got {new_per_day}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    end = start + dt.timedelta(days=days - 1)
    data = _generate(start, days, new_per_day, seed, steady)
    database = out_dir / DATABASE_NAME
    counts: dict[str, int] = {}

    def write_db(tmp: Path) -> None:
        counts.update(_write_database(tmp, data, start, end, days, seed, new_per_day))
    with contextlib.suppress(FileNotFoundError):
        # a WAL left by a crashed writer of an older file would be replayed onto the new one
        (database.with_name(database.name + ".wal")).unlink()
    _atomic(database, write_db)
    master = out_dir / MASTER_NAME
    _atomic(master, _write_master)
    exclusions = out_dir / EXCLUSIONS_NAME
    _atomic(exclusions, lambda tmp: _write_exclusions(tmp, data["exclusions"]))
    log.info("simulated Nova %s..%s (seed %d, %d new/day): %s", start, end, seed, new_per_day,
             ", ".join(f"{t} {c}" for t, c in counts.items()))
    return SimulationInfo(database, master, exclusions, start, end, seed, new_per_day, counts)
