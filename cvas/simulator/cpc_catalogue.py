"""The simulated Nova's fixed world: its CPC catalogue (services, categories, prices, models), the
rates of its lifecycles, and the names of the files a simulation writes."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np



log = logging.getLogger(__name__)

DATABASE_NAME = "nova.duckdb"
MASTER_NAME = "Master_CPCs.xlsx"
EXCLUSIONS_NAME = "Users_No_Limits.csv"
GENERATOR = "cvas.simulator.simulate/1"

DAY_S = 86_400
EPOCH = dt.date(1970, 1, 1)

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
ACT_CHANNELS = (np.array([1, 2, 3, 7, 9, 4, 0, 99]), np.array([.40, .25, .15, .08, .05, .03, .02, .02]))
DCT_CHANNELS = (np.array([4, 8, 2, 3, 7, 0]), np.array([.35, .30, .15, .10, .05, .05]))
TRIAL_END_CHANNELS = (np.array([8, 4, 99]), np.array([.85, .10, .05]))
CNR_MODES = (("CCC-CR", 4), ("WEB", 2), ("SMS", 3), ("IVR", 6))
CNR_MODE_P = np.array([.50, .25, .15, .10])

CAMPAIGNS = ("53e0c03", "c342de8", "5de65c1", "a91f2b7", "0d4e8f1", "normal", "destacado")
CAMPAIGN_P = np.array([.30, .15, .12, .08, .05, .20, .10])
MEDIA = ("sms", "web", "banner", "push", "email")
PROVIDERS = ("101", "205", "318", "7", "412")
REFUND_REASONS = ("Customer claim", "Unrecognised charge", "Service not received", "Goodwill")
AUTO_TEXTS = ("Automatic Refund", "automatic refund", "AUTOMATIC REFUND")

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
NA_UPGRADE_CELLS = frozenset({43551, 10487})

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
