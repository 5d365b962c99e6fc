"""Fixed vocabularies of the synthetic marketplace: categories, brands, countries and text fragments.

Everything here is an immutable constant; the generator indexes into these tuples with integer codes so the
per-row work stays vectorised. Brand names are invented so the data set never implies anything about a real
company.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CATEGORIES: tuple[str, ...] = (
    "electronics",
    "fashion",
    "beauty",
    "luxury_goods",
    "toys",
    "home",
    "health",
    "sports",
    "collectibles",
    "pharmacy_adjacent",
)
CATEGORY_WEIGHTS: tuple[float, ...] = (0.16, 0.18, 0.10, 0.05, 0.08, 0.16, 0.07, 0.09, 0.06, 0.05)
# Median price of a genuine unbranded item; brands multiply it.
CATEGORY_BASE_PRICE: tuple[float, ...] = (120.0, 40.0, 22.0, 380.0, 25.0, 45.0, 28.0, 55.0, 60.0, 18.0)
# Typical order value per category, used for GMV.
CATEGORY_ORDER_VALUE: tuple[float, ...] = (95.0, 45.0, 30.0, 420.0, 28.0, 50.0, 32.0, 60.0, 70.0, 22.0)

# Where counterfeit and misleading listings tend to live (weights over CATEGORIES; prohibited and unsafe items:
# synthetic/items.py). Sports carries no counterfeit weight on purpose: the default drift introduces a
# counterfeit wave there, so the segment must be clean beforehand.
COUNTERFEIT_CATEGORY_WEIGHTS: tuple[float, ...] = (0.16, 0.30, 0.16, 0.32, 0.06, 0.0, 0.0, 0.0, 0.0, 0.0)
MISLEADING_CATEGORY_WEIGHTS: tuple[float, ...] = (0.15, 0.05, 0.25, 0.0, 0.05, 0.08, 0.27, 0.05, 0.0, 0.10)

# (name, category, price multiplier over the category base, counterfeit target)
BRANDS: tuple[tuple[str, str, float, bool], ...] = (
    ("Pixelon", "electronics", 4.5, True),
    ("Sonara", "electronics", 2.8, True),
    ("Voltix", "electronics", 1.1, False),
    ("Nordtek", "electronics", 1.3, False),
    ("Kestrel Audio", "electronics", 1.6, False),
    ("Maison Verlaine", "fashion", 9.0, True),
    ("Castellane", "fashion", 7.0, True),
    ("Hartwell London", "fashion", 5.0, True),
    ("Urbanfold", "fashion", 1.2, False),
    ("Cotton Harbor", "fashion", 0.9, False),
    ("Lumineux", "beauty", 4.0, True),
    ("Oriane", "beauty", 5.5, True),
    ("Glowfield", "beauty", 1.1, False),
    ("Petal & Pine", "beauty", 1.3, False),
    ("Maison Verlaine", "luxury_goods", 4.0, True),
    ("Aurelio Ferrante", "luxury_goods", 5.0, True),
    ("Valmont & Fils", "luxury_goods", 6.5, True),
    ("Sabre Noir", "luxury_goods", 3.5, True),
    ("Brickwell", "toys", 2.0, True),
    ("Tumble Tots", "toys", 1.0, False),
    ("Hearthline", "home", 1.3, False),
    ("Casa Moderna", "home", 1.6, False),
    ("Vitara", "health", 1.4, False),
    ("PureForm", "health", 1.2, False),
    ("Aerostride", "sports", 3.2, False),
    ("Peakline", "sports", 1.3, False),
    ("Velo Pro", "sports", 1.5, False),
    ("Heritage Mint", "collectibles", 2.5, False),
    ("CardVault", "collectibles", 1.4, False),
    ("Medisure", "pharmacy_adjacent", 1.3, False),
    ("Clearview", "pharmacy_adjacent", 1.1, False),
)
UNBRANDED = "unbranded"
# Share of genuine listings per category that carry no brand.
UNBRANDED_SHARE: float = 0.35

PRODUCT_NOUNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "electronics": (
        "wireless earbuds", "smartwatch", "phone charger", "bluetooth speaker",
        "gaming mouse", "usb-c cable", "tablet case", "power bank",
    ),
    "fashion": (
        "sneakers", "denim jacket", "t-shirt", "leather belt",
        "sunglasses", "hoodie", "scarf", "ankle boots",
    ),
    "beauty": (
        "face serum", "lipstick", "perfume", "eyeshadow palette",
        "moisturiser", "hair dryer", "foundation", "nail kit",
    ),
    "luxury_goods": (
        "handbag", "wallet", "wristwatch", "tote bag",
        "card holder", "silk scarf", "bracelet", "crossbody bag",
    ),
    "toys": (
        "building blocks", "plush bear", "rc car", "puzzle",
        "action figure", "board game", "doll house", "train set",
    ),
    "home": (
        "table lamp", "throw blanket", "cookware set", "bed sheets",
        "wall clock", "storage box", "coffee maker", "vase",
    ),
    "health": (
        "vitamin d", "protein powder", "massage gun", "blood pressure monitor",
        "fitness tracker", "herbal tea", "knee brace", "essential oil",
    ),
    "sports": (
        "running shoes", "yoga mat", "dumbbells", "cycling helmet",
        "football", "tennis racket", "hiking backpack", "gym gloves",
    ),
    "collectibles": (
        "trading cards", "vintage coin", "figurine", "stamp collection",
        "signed poster", "comic book", "vinyl record", "carved ornament",
    ),
    "pharmacy_adjacent": (
        "pain relief gel", "sleep aid", "allergy tablets", "first aid kit",
        "contact lenses", "hearing amplifier", "reading glasses", "cold remedy",
    ),
})

TITLE_ADJECTIVES: tuple[str, ...] = (
    "New", "Premium", "Classic", "Original", "Genuine", "Limited", "Vintage", "Compact", "Deluxe", "Authentic",
    "Everyday", "Lightweight",
)
TITLE_SUFFIXES: tuple[str, ...] = (
    "", "", "", " - free shipping", " | fast delivery", " (boxed)", " - 2026 model", " - like new", " bundle",
    " - gift idea",
)
DESCRIPTION_OPENERS: tuple[tuple[str, str], ...] = (
    ("Brand new ", ", never used."),
    ("Gently used ", " in great condition."),
    ("Selling my ", ", works perfectly."),
    ("High quality ", " for everyday use."),
    ("Our best selling ", ", loved by customers."),
    ("Spare ", ", still sealed in the box."),
)
DESCRIPTION_MIDDLES: tuple[str, ...] = (
    " Ships within 2 business days.",
    " Tracked shipping included.",
    " Returns accepted within 14 days.",
    " Message me with any questions.",
    " Bundle discounts available.",
    " Smoke-free home.",
    " Stored carefully, no scratches.",
    "",
)

# Tell-tale terms. Violating listings use them more often, some benign listings use them innocently
# ("AAA batteries", "ivory coloured", "inspired by the seventies"), and many violations avoid them. The terms of
# prohibited and unsafe items live with their item kinds in synthetic/items.py.
COUNTERFEIT_TERMS: tuple[str, ...] = ("replica", "1:1", "AAA", "mirror quality", "inspired by", "dupe", "super copy")
MISLEADING_TERMS: tuple[str, ...] = (
    "100% original", "guaranteed", "miracle", "cure", "lose 10kg in a week", "clinically proven",
    "doctor approved", "best in the world",
)
BENIGN_LOOKALIKE_TERMS: tuple[str, ...] = (
    "inspired by", "AAA", "guaranteed", "100% original", "clinically proven", "ivory", "dupe", "bulk oem",
)
# Innocent products whose names contain words investigators flag (legal nicotine patches, an "ammo can"
# storage box, ivory-coloured textiles): prohibited-item words alone are not proof.
BENIGN_LOOKALIKE_NOUNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "pharmacy_adjacent": ("nicotine patches", "prescription lens wipes"),
    "health": ("nicotine gum", "cbd-free hemp balm"),
    "home": ("ammo can storage box", "ivory throw pillow"),
    "fashion": ("ivory lace dress",),
    "sports": ("ammo pouch belt",),
    "collectibles": ("faux ivory chess set", "vintage ammo crate"),
    "electronics": ("vape pen charger cable",),
})
BENIGN_LOOKALIKE_NOUN_RATE: float = 0.02
# Off-platform contact: sellers of illegal goods move the sale to a messenger; some honest shops link out too.
LINK_SENTENCES: tuple[str, ...] = (
    " DM me on telegram for the full menu.",
    " WhatsApp me for bulk prices.",
    " Text me on Signal before ordering.",
    " Order through our website, link in profile.",
    " Cheaper on my own shop, ask me for the link.",
    " Add me on wechat for more models.",
)
KEYWORD_SENTENCES: tuple[tuple[str, str], ...] = (
    (" Top ", " quality, looks identical to retail."),
    (" ", " - same as in the boutique."),
    (" Now with ", " pricing, limited stock."),
    (" Seller note: ", "."),
)

# ISO-2 registration countries and their share of accounts.
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "CN", "IN", "BR", "CA", "ES", "IT", "NL", "PL", "TR", "NG")
COUNTRY_WEIGHTS: tuple[float, ...] = (
    0.33, 0.12, 0.10, 0.07, 0.06, 0.05, 0.05, 0.04, 0.04, 0.04, 0.03, 0.03, 0.02, 0.02,
)
# Mild, observable-only country risk on the account logit (most countries are neutral).
COUNTRY_RISK: tuple[float, ...] = (0.0, 0.0, -0.1, 0.0, 0.25, 0.15, 0.1, 0.0, 0.0, 0.0, -0.1, 0.1, 0.2, 0.35)
# Ship-from countries that counterfeit listings favour; VN is deliberately absent (default drift origin).
COUNTERFEIT_ORIGINS: tuple[str, ...] = ("CN", "HK", "TR", "TH")
COUNTERFEIT_ORIGIN_WEIGHTS: tuple[float, ...] = (0.55, 0.25, 0.12, 0.08)
# Legitimate cross-border ship-from countries.
CROSS_BORDER_ORIGINS: tuple[str, ...] = ("CN", "US", "DE", "GB", "VN", "IN", "PL", "HK")
CROSS_BORDER_WEIGHTS: tuple[float, ...] = (0.40, 0.14, 0.10, 0.08, 0.08, 0.08, 0.06, 0.06)

VERIFICATION_LEVELS: tuple[str, ...] = ("none", "email", "phone", "id")
IDENTIFIER_TYPES: tuple[str, ...] = ("device", "payment", "address", "ip_range")
ACCOUNT_RISK_TYPES: tuple[str, ...] = ("scam_seller", "counterfeit", "fake_engagement")
LISTING_RISK_TYPES: tuple[str, ...] = ("counterfeit", "prohibited_item", "misleading_listing", "unsafe_product")

# Harm classes, in the order risk teams work them (harm first, then fraud by money). "none" is valid for
# user-supplied truth of non-violations; generated rows always carry the class they would violate as.
HARM_CLASSES: tuple[str, ...] = (
    "illegal_or_dangerous", "safety", "scam", "ip_infringement", "misleading", "fake_engagement", "none",
)
RISK_TYPE_HARM_CLASS: Mapping[str, str] = MappingProxyType({
    "prohibited_item": "illegal_or_dangerous",
    "unsafe_product": "safety",
    "scam_seller": "scam",
    "counterfeit": "ip_infringement",
    "misleading_listing": "misleading",
    "fake_engagement": "fake_engagement",
})
