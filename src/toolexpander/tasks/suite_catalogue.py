"""The catalogue of the built-in tool suite (`toolexpander.tasks.suite`): 31 tools in 25 domains,
each a JSON-schema function with typed parameters and six query templates, and the value pools
their arguments draw from, with the types that describe them. How splits and items are drawn
from it is `toolexpander.tasks.suite`.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

# How many of each tool's templates (the last ones) only the test split uses.
N_TEST_TEMPLATES = 2


@dataclass(frozen=True)
class Pool:
    """The values a parameter draws from: disjoint train and test pools, so test values are unseen."""

    train: tuple
    test: tuple

    @classmethod
    def shared(cls, *values: Any) -> Pool:
        """One pool for every split (enums and booleans cannot be held out)."""
        return cls(values, values)


@dataclass(frozen=True)
class Param:
    """One parameter of a suite tool: its JSON-schema type and how its value reads in a query."""

    name: str
    type: str
    description: str
    values: Pool
    required: bool = True
    enum: bool = False
    words: tuple[str, str] = ("", "")  # booleans: how True and False read in a query
    size: tuple[int, int] = (1, 1)  # arrays: least and most items

    def schema(self) -> dict:
        schema: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum:
            schema["enum"] = list(self.values.train)
        if self.type == "array":
            schema["items"] = {"type": "string"}
        return schema

    def surface(self, value: Any) -> str:
        """How ``value`` is written in a query."""
        if self.type == "boolean":
            return self.words[0] if value else self.words[1]
        if self.type == "array":
            return value[0] if len(value) == 1 else ", ".join(value[:-1]) + " and " + value[-1]
        return str(value)

    def draw(self, rng: random.Random, pool: str, taken: list) -> Any:
        """A value from ``pool``, distinct from ``taken`` (a call never repeats a value: from != to)."""
        if self.type == "array":
            return rng.sample(getattr(self.values, pool), rng.randint(*self.size))
        choices = getattr(self.values, pool)
        if self.type != "boolean":
            choices = [v for v in choices if v not in taken]
        return rng.choice(choices)


@dataclass(frozen=True)
class SuiteTool:
    """A tool of the suite: its schema and its query templates (``{param}`` marks a value)."""

    name: str
    domain: str
    description: str
    params: tuple[Param, ...]
    templates: tuple[str, ...]

    @property
    def train_templates(self) -> tuple[str, ...]:
        return self.templates[:-N_TEST_TEMPLATES]

    @property
    def test_templates(self) -> tuple[str, ...]:
        return self.templates[-N_TEST_TEMPLATES:]

    def schema(self) -> dict:
        """The tool as a record shows it."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": {
                "type": "object",
                "properties": {p.name: p.schema() for p in self.params},
                "required": [p.name for p in self.params if p.required],
            },
        }

    def query(self, template: str, arguments: dict) -> str:
        """The request that ``template`` makes of ``arguments``."""
        params = {p.name: p for p in self.params}
        return template.format(**{name: params[name].surface(value) for name, value in arguments.items()})

    def draw_call(self, rng: random.Random, templates: tuple[str, ...], pool: str) -> tuple[str, dict]:
        """A query and its gold call; the template decides which optional parameters are stated."""
        template = rng.choice(templates)
        stated = placeholders(template)
        arguments: dict[str, Any] = {}
        for param in self.params:
            if param.name in stated:
                arguments[param.name] = param.draw(rng, pool, list(arguments.values()))
        return self.query(template, arguments), {"name": self.name, "arguments": arguments}


def placeholders(template: str) -> list[str]:
    """The parameter names a template states, in order."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


# Value pools. Train and test never share a value; held-out tools only ever use the test side.
CITIES = Pool(
    ("Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Dublin", "Prague", "Oslo", "Warsaw",
     "Tokyo", "Seoul", "Toronto", "Chicago", "Sydney", "Cairo", "Lima", "Amsterdam"),
    ("Helsinki", "Athens", "Budapest", "Zurich", "Osaka", "Denver", "Boston", "Mumbai", "Bangkok",
     "Santiago", "Montreal", "Melbourne", "Istanbul", "Dakar"),
)
CURRENCIES = Pool(("USD", "EUR", "GBP", "JPY", "CAD", "AUD"), ("CHF", "SEK", "NOK", "INR", "MXN", "BRL"))
DATES = Pool(
    tuple(f"2025-{m:02d}-{d:02d}" for m in (1, 3, 5, 7, 9, 11) for d in (4, 12, 19, 27)),
    tuple(f"2025-{m:02d}-{d:02d}" for m in (2, 4, 6, 8, 10, 12) for d in (6, 14, 21, 28)),
)
PEOPLE = Pool(("Anna", "Ben", "Carla", "David", "Emma", "Felix"), ("Greta", "Hugo", "Ines", "Jonas", "Karin", "Lena"))
ROOMS = ("kitchen", "bedroom", "living room", "bathroom", "office", "hallway")
PLACES = Pool((), ("Central Station", "City Hospital", "Hotel Astoria", "Riverside Mall", "Union Square"))


def _city(name: str = "city", description: str = "City name, e.g. London") -> Param:
    return Param(name, "string", description, CITIES)


TOOLS: tuple[SuiteTool, ...] = (
    SuiteTool(
        "get_current_weather", "weather", "Get the current weather in a city.",
        (_city(), Param("units", "string", "Temperature units", Pool.shared("celsius", "fahrenheit"),
                        required=False, enum=True)),
        ("What's the weather like in {city} right now?",
         "Tell me the current weather in {city} in {units}.",
         "How warm is it in {city} at the moment?",
         "Current conditions in {city}, please, with temperatures in {units}.",
         "I'm heading out in {city}. What is the weather there now?",
         "Give me the weather in {city} right now, in {units}."),
    ),
    SuiteTool(
        "get_weather_forecast", "weather", "Get the weather forecast for a city for the coming days.",
        (_city(), Param("days", "integer", "Number of days to forecast", Pool((2, 3, 4, 6), (5, 7, 8, 10)))),
        ("What will the weather be in {city} over the next {days} days?",
         "Give me a {days}-day forecast for {city}.",
         "Forecast for {city} for the coming {days} days, please.",
         "I need the weather forecast in {city} for {days} days.",
         "Planning a trip to {city}: how will the weather be for the next {days} days?",
         "Show the {city} forecast covering {days} days."),
    ),
    SuiteTool(
        "convert_currency", "markets", "Convert an amount of money from one currency to another.",
        (Param("amount", "number", "Amount to convert", Pool((20, 45, 150, 12.5, 99.5, 300, 1200),
                                                              (35, 75.5, 640, 18.25, 2500, 60))),
         Param("from_currency", "string", "Currency code to convert from, e.g. USD", CURRENCIES),
         Param("to_currency", "string", "Currency code to convert to, e.g. EUR", CURRENCIES)),
        ("Convert {amount} {from_currency} to {to_currency}.",
         "How much is {amount} {from_currency} in {to_currency}?",
         "I have {amount} {from_currency}. What is that in {to_currency}?",
         "Exchange {amount} {from_currency} into {to_currency}, please.",
         "What do {amount} {from_currency} come to in {to_currency}?",
         "Please turn {amount} {from_currency} into {to_currency} at today's rate."),
    ),
    SuiteTool(
        "set_timer", "timers", "Start a countdown timer.",
        (Param("minutes", "integer", "Length of the timer in minutes", Pool((3, 4, 8, 12, 20, 25), (5, 10, 15, 30, 45))),
         Param("label", "string", "Name of the timer", Pool(("pasta", "tea", "laundry", "oven"), ("eggs", "rice", "nap")),
               required=False)),
        ("Set a timer for {minutes} minutes.",
         'Start a {minutes}-minute timer called "{label}".',
         "Can you time {minutes} minutes for me?",
         'Timer: {minutes} minutes, label it "{label}".',
         "Please count down {minutes} minutes.",
         'I need a timer named "{label}" for {minutes} minutes.'),
    ),
    SuiteTool(
        "create_reminder", "timers", "Create a reminder at a time of day.",
        (Param("text", "string", "What to be reminded of",
               Pool(("call the dentist", "water the plants", "pay the rent", "book the tickets"),
                    ("buy milk", "send the report", "feed the cat", "charge the laptop"))),
         Param("time", "string", "Time of day as HH:MM",
               Pool(("07:30", "08:00", "12:30", "17:00", "18:30", "21:00"), ("06:45", "09:15", "13:45", "20:45")))),
        ('Remind me at {time}: "{text}".',
         'Set a reminder for {time} that says "{text}".',
         'At {time}, remind me "{text}".',
         'Create a reminder "{text}" for {time}.',
         "Don't let me forget \"{text}\". Ping me at {time}.",
         'I want a {time} reminder with the text "{text}".'),
    ),
    SuiteTool(
        "send_email", "email", "Send an e-mail.",
        (Param("to", "array", "Recipient addresses",
               Pool(("anna@example.com", "ben@example.com", "carla@example.com", "david@example.com"),
                    ("greta@example.org", "hugo@example.org", "ines@example.org", "jonas@example.org")),
               size=(1, 2)),
         Param("subject", "string", "Subject line",
               Pool(("Team lunch", "Quarterly report", "Project update", "Holiday plans"),
                    ("Budget review", "Weekend trip", "Server outage", "Welcome aboard"))),
         Param("urgent", "boolean", "Mark the e-mail as urgent", Pool.shared(True, False), required=False,
               words=("mark it as urgent", "do not mark it as urgent"))),
        ('Send an email to {to} with the subject "{subject}".',
         'Email {to} about "{subject}" and {urgent}.',
         'Write to {to}, subject "{subject}".',
         'Please email {to}. Subject: "{subject}". Also {urgent}.',
         'Drop {to} a mail titled "{subject}".',
         'Mail {to} with the subject line "{subject}", and {urgent}.'),
    ),
    SuiteTool(
        "create_event", "calendar", "Add an event to the calendar.",
        (Param("title", "string", "Event title",
               Pool(("Dentist appointment", "Team meeting", "Yoga class", "Sprint review"),
                    ("Budget planning", "Parent evening", "Guitar lesson", "Client call"))),
         Param("date", "string", "Date as YYYY-MM-DD", DATES),
         Param("attendees", "array", "Names of the people to invite", PEOPLE, required=False, size=(1, 2))),
        ('Add "{title}" to my calendar on {date}.',
         'Schedule "{title}" on {date} with {attendees}.',
         'Put an event called "{title}" in my calendar for {date}.',
         'Create a calendar event "{title}" on {date} and invite {attendees}.',
         'Block {date} for "{title}".',
         'Set up "{title}" for {date} with {attendees} attending.'),
    ),
    SuiteTool(
        "get_stock_price", "markets", "Get the latest price of a stock.",
        (Param("symbol", "string", "Ticker symbol, e.g. IBM",
               Pool(("AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "NVDA"), ("NFLX", "INTC", "ORCL", "ADBE", "AMD"))),),
        ("What's the stock price of {symbol}?",
         "How is {symbol} trading right now?",
         "Get me the latest quote for {symbol}.",
         "Share price for {symbol}, please.",
         "Look up the current price of {symbol} shares.",
         "Where is {symbol} stock at today?"),
    ),
    SuiteTool(
        "translate_text", "translation", "Translate text into another language.",
        (Param("text", "string", "Text to translate",
               Pool(("Good morning", "Where is the station?", "Thank you very much", "I am lost"),
                    ("See you tomorrow", "The bill, please", "Is this seat free?", "Happy birthday"))),
         Param("target_language", "string", "Language to translate into, e.g. English",
               Pool(("French", "German", "Spanish", "Italian", "Japanese"),
                    ("Dutch", "Portuguese", "Korean", "Swedish", "Polish")))),
        ('Translate "{text}" into {target_language}.',
         'How do you say "{text}" in {target_language}?',
         'What is "{text}" in {target_language}?',
         'Please give me the {target_language} for "{text}".',
         'Render "{text}" in {target_language}, please.',
         'I need "{text}" translated to {target_language}.'),
    ),
    SuiteTool(
        "get_distance", "maps", "Get the travel distance between two cities.",
        (_city("origin", "Start city"), _city("destination", "End city"),
         Param("mode", "string", "How to travel", Pool.shared("car", "bike", "train", "foot"),
               required=False, enum=True)),
        ("How far is it from {origin} to {destination}?",
         "What's the distance between {origin} and {destination} by {mode}?",
         "Distance from {origin} to {destination}, please.",
         "How long is the trip from {origin} to {destination} by {mode}?",
         "I'm going from {origin} to {destination}. How many kilometers is that?",
         "Measure the route from {origin} to {destination} by {mode}."),
    ),
    SuiteTool(
        "search_flights", "flights", "Search for flights between two cities on a date.",
        (_city("origin", "Departure city"), _city("destination", "Arrival city"),
         Param("date", "string", "Departure date as YYYY-MM-DD", DATES),
         Param("cabin", "string", "Cabin class", Pool.shared("economy", "business", "first"),
               required=False, enum=True),
         Param("nonstop", "boolean", "Only direct flights", Pool.shared(True, False), required=False,
               words=("direct flights only", "connections are fine"))),
        ("Find flights from {origin} to {destination} on {date}.",
         "Search {cabin} class flights from {origin} to {destination} on {date}.",
         "I need to fly from {origin} to {destination} on {date}, {nonstop}.",
         "Look for {cabin} class tickets from {origin} to {destination} for {date}.",
         "Any flights from {origin} to {destination} on {date} in {cabin} class?",
         "Show me flights leaving {origin} for {destination} on {date}, {nonstop}."),
    ),
    SuiteTool(
        "search_hotels", "hotels", "Search for hotel rooms in a city.",
        (_city(), Param("nights", "integer", "Number of nights", Pool((2, 3, 4, 6), (5, 7, 8, 10))),
         Param("guests", "integer", "Number of guests", Pool((2, 3), (4, 5, 6)), required=False)),
        ("Find a hotel in {city} for {nights} nights.",
         "I need a room in {city} for {nights} nights for {guests} guests.",
         "Search hotels in {city}, {nights} nights.",
         "Hotel in {city}: {nights} nights, {guests} guests.",
         "Where can I stay in {city} for {nights} nights?",
         "Look up hotels in {city} for {guests} guests and {nights} nights."),
    ),
    SuiteTool(
        "find_restaurants", "restaurants", "Find restaurants in a city.",
        (_city(), Param("cuisine", "string", "Type of food",
                        Pool.shared("italian", "japanese", "mexican", "indian", "thai", "french"), enum=True),
         Param("max_results", "integer", "How many restaurants to list", Pool((3, 5, 8), (4, 6, 10)), required=False)),
        ("Find {cuisine} restaurants in {city}.",
         "Show me {max_results} {cuisine} places to eat in {city}.",
         "Where can I get {cuisine} food in {city}?",
         "List {max_results} {cuisine} restaurants in {city}.",
         "I'm hungry for {cuisine} food in {city}. Any restaurants?",
         "Give me the top {max_results} {cuisine} restaurants in {city}."),
    ),
    SuiteTool(
        "convert_units", "units", "Convert a length from one unit to another.",
        (Param("value", "number", "Length to convert", Pool((5, 12.5, 42, 100, 3.2), (7, 26.2, 64, 1.5, 250))),
         Param("from_unit", "string", "Unit to convert from",
               Pool.shared("kilometers", "miles", "meters", "feet"), enum=True),
         Param("to_unit", "string", "Unit to convert to",
               Pool.shared("kilometers", "miles", "meters", "feet"), enum=True)),
        ("Convert {value} {from_unit} to {to_unit}.",
         "How many {to_unit} are {value} {from_unit}?",
         "What is {value} {from_unit} in {to_unit}?",
         "Please change {value} {from_unit} into {to_unit}.",
         "Express {value} {from_unit} in {to_unit}.",
         "I walked {value} {from_unit}. How much is that in {to_unit}?"),
    ),
    SuiteTool(
        "play_music", "music", "Play music of a genre.",
        (Param("genre", "string", "Music genre", Pool.shared("jazz", "rock", "classical", "pop", "reggae"), enum=True),
         Param("shuffle", "boolean", "Shuffle the tracks", Pool.shared(True, False), required=False,
               words=("on", "off"))),
        ("Play some {genre} music.",
         "Put on {genre} with shuffle {shuffle}.",
         "I'd like to listen to {genre}.",
         "Start a {genre} playlist, shuffle {shuffle}.",
         "Can you play {genre} for me?",
         "Queue up {genre} music and turn shuffle {shuffle}."),
    ),
    SuiteTool(
        "control_lights", "smart_home", "Switch the lights of a room on or off.",
        (Param("room", "string", "Room", Pool.shared(*ROOMS), enum=True),
         Param("on", "boolean", "true to switch on, false to switch off", Pool.shared(True, False),
               words=("on", "off"))),
        ("Turn {on} the lights in the {room}.",
         "Switch the {room} lights {on}.",
         "Lights {on} in the {room}, please.",
         "Could you turn the {room} lights {on}?",
         "Please flip the lights in the {room} {on}.",
         "I want the {room} lights {on} now."),
    ),
    SuiteTool(
        "set_thermostat", "smart_home", "Set the target temperature in degrees Celsius.",
        (Param("temperature", "number", "Target temperature", Pool((19, 20.5, 21, 22.5, 18.5), (17, 19.5, 23, 23.5, 24))),
         Param("room", "string", "Room", Pool.shared(*ROOMS), required=False, enum=True)),
        ("Set the thermostat to {temperature} degrees.",
         "Make it {temperature} degrees in the {room}.",
         "Change the heating to {temperature} degrees.",
         "Set the {room} thermostat to {temperature} degrees.",
         "I'd like {temperature} degrees in the {room}, please.",
         "Adjust the temperature to {temperature} degrees."),
    ),
    SuiteTool(
        "add_to_cart", "shopping", "Add a product to the shopping cart.",
        (Param("product", "string", "Product name",
               Pool(("AA batteries", "coffee filters", "tennis balls", "paper towels"),
                    ("garden gloves", "light bulbs", "notebooks", "water bottles"))),
         Param("quantity", "integer", "How many to add", Pool((2, 3, 4, 6), (5, 7, 8, 10)))),
        ("Add {quantity} {product} to my cart.",
         "Put {quantity} {product} in the shopping cart.",
         "I want to buy {quantity} {product}.",
         "Order {quantity} {product} for me, please.",
         "Please add {product} to my basket, {quantity} of them.",
         "Get {quantity} {product} into my cart."),
    ),
    SuiteTool(
        "get_news", "news", "Get the latest news headlines on a topic.",
        (Param("topic", "string", "News topic",
               Pool.shared("business", "sports", "technology", "science", "health"), enum=True),
         Param("limit", "integer", "How many headlines", Pool((3, 5, 8), (4, 6, 10)), required=False)),
        ("What's the latest {topic} news?",
         "Show me {limit} {topic} headlines.",
         "Any news about {topic} today?",
         "Give me the top {limit} stories in {topic}.",
         "Catch me up on {topic} news.",
         "I want {limit} of today's {topic} headlines."),
    ),
    SuiteTool(
        "log_workout", "fitness", "Log a workout.",
        (Param("activity", "string", "Kind of workout",
               Pool.shared("running", "cycling", "swimming", "walking", "rowing"), enum=True),
         Param("minutes", "integer", "Duration in minutes", Pool((20, 30, 40, 60), (25, 35, 45, 50))),
         Param("distance_km", "number", "Distance in kilometers", Pool((3.5, 5, 8.2, 10), (4.2, 6.5, 12, 21.1)),
               required=False)),
        ("Log a {minutes}-minute {activity} workout.",
         "I just did {minutes} minutes of {activity} and covered {distance_km} km.",
         "Record {activity} for {minutes} minutes.",
         "Add a workout: {activity}, {minutes} minutes, {distance_km} km.",
         "Track my {activity} session of {minutes} minutes.",
         "Save today's {activity}: {distance_km} km in {minutes} minutes."),
    ),
    SuiteTool(
        "transfer_money", "banking", "Transfer money in dollars to a person.",
        (Param("amount", "number", "Amount in dollars", Pool((25, 60, 120.5, 300, 42.75), (35, 80.25, 150, 499.99, 18))),
         Param("recipient", "string", "Full name of the recipient",
               Pool(("Anna Berg", "Ben Clarke", "Carla Diaz", "David Evans"),
                    ("Greta Hall", "Hugo Ibsen", "Ines Jones", "Jonas Klein"))),
         Param("note", "string", "Note for the recipient",
               Pool(("rent", "dinner", "concert tickets", "birthday gift"), ("groceries", "taxi", "book club")),
               required=False)),
        ("Send {amount} dollars to {recipient}.",
         'Transfer {amount} dollars to {recipient} with the note "{note}".',
         "Pay {recipient} {amount} dollars.",
         'Move {amount} dollars to {recipient}, reference "{note}".',
         "Wire {amount} dollars over to {recipient}.",
         'Please pay {recipient} {amount} dollars and add the note "{note}".'),
    ),
    SuiteTool(
        "get_account_balance", "banking", "Get the balance of one of the user's bank accounts.",
        (Param("account", "string", "Which account", Pool.shared("checking", "savings"), enum=True),),
        ("What's my {account} balance?",
         "How much money is in my {account} account?",
         "Check the balance of my {account} account.",
         "Show my {account} account balance.",
         "Tell me what's left in my {account} account.",
         "Balance of the {account} account, please."),
    ),
    SuiteTool(
        "get_crypto_price", "markets", "Get the price of a cryptocurrency.",
        (Param("coin", "string", "Cryptocurrency",
               Pool.shared("bitcoin", "ethereum", "solana", "cardano", "dogecoin"), enum=True),
         Param("currency", "string", "Currency code for the price, e.g. USD", CURRENCIES, required=False)),
        ("What's the price of {coin}?",
         "How much is one {coin} in {currency}?",
         "Current {coin} price, please.",
         "Get the {coin} price in {currency}.",
         "What is {coin} trading at right now?",
         "Quote me {coin} in {currency}."),
    ),
    SuiteTool(
        "define_word", "dictionary", "Look up the definition of an English word.",
        (Param("word", "string", "The word",
               Pool(("serendipity", "ephemeral", "ubiquitous", "meticulous", "resilient"),
                    ("quixotic", "laconic", "pragmatic", "candid"))),),
        ('What does "{word}" mean?',
         'Define the word "{word}".',
         'Give me the definition of "{word}".',
         'Look up "{word}" in the dictionary.',
         'I keep seeing "{word}". What is its meaning?',
         'Explain the word "{word}" to me.'),
    ),
    SuiteTool(
        "get_sports_scores", "sports", "Get the latest result of a sports team.",
        (Param("team", "string", "Team name",
               Pool(("Arsenal", "Lakers", "Yankees", "Celtics", "Juventus"), ("Barcelona", "Warriors", "Dodgers", "Ajax"))),),
        ("How did {team} do in their last game?",
         "What's the latest score for {team}?",
         "Show me the {team} results.",
         "Did {team} win yesterday?",
         "Give me the most recent {team} score.",
         "I missed the {team} match. What was the result?"),
    ),
    SuiteTool(
        "get_local_time", "time", "Get the current local time in a city.",
        (_city(),),
        ("What time is it in {city}?",
         "Tell me the local time in {city}.",
         "What's the current time in {city}?",
         "Current time in {city}, please.",
         "I need to call someone in {city}. What time is it there?",
         "Check the clock in {city} for me."),
    ),
    # Held out: only the test_unseen_tools split shows or calls these.
    SuiteTool(
        "find_recipes", "cooking", "Find recipes that use the given ingredients.",
        (Param("ingredients", "array", "Ingredients to use",
               Pool((), ("chicken", "rice", "garlic", "tomatoes", "spinach", "lentils", "mushrooms")), size=(2, 3)),
         Param("max_minutes", "integer", "Longest cooking time in minutes", Pool((), (15, 20, 30, 45)),
               required=False)),
        ("Find a recipe with {ingredients}.",
         "What can I cook with {ingredients} in under {max_minutes} minutes?",
         "Suggest recipes using {ingredients}.",
         "I have {ingredients}. Any recipe ready within {max_minutes} minutes?",
         "Recipes that use {ingredients}, please.",
         "Show me dishes made from {ingredients} that take at most {max_minutes} minutes."),
    ),
    SuiteTool(
        "book_taxi", "taxi", "Book a taxi between two places.",
        (Param("pickup", "string", "Where to pick up", PLACES),
         Param("destination", "string", "Where to go", PLACES),
         Param("passengers", "integer", "Number of passengers", Pool((), (2, 3, 4, 5)), required=False)),
        ("Book a taxi from {pickup} to {destination}.",
         "Get me a cab from {pickup} to {destination} for {passengers} people.",
         "I need a ride from {pickup} to {destination}.",
         "Order a taxi for {passengers} passengers from {pickup} to {destination}.",
         "Call a cab to take me from {pickup} to {destination}.",
         "Taxi from {pickup} to {destination}, {passengers} of us."),
    ),
    SuiteTool(
        "track_package", "shipping", "Get the delivery status of a package.",
        (Param("tracking_number", "string", "Tracking number",
               Pool((), ("ZX4821", "KP9034", "QA7716", "LM2058", "TR6643"))),),
        ("Where is my package {tracking_number}?",
         "Track shipment {tracking_number}.",
         "What's the status of parcel {tracking_number}?",
         "Has package {tracking_number} been delivered yet?",
         "Check delivery status for {tracking_number}.",
         "Find out where {tracking_number} is."),
    ),
    SuiteTool(
        "calculate_tip", "tips", "Calculate the tip for a bill.",
        (Param("bill_amount", "number", "Bill in dollars", Pool((), (48.5, 72, 115.25, 36, 210))),
         Param("percent", "integer", "Tip percentage", Pool((), (10, 15, 18, 20, 25)))),
        ("What's a {percent} percent tip on a {bill_amount} dollar bill?",
         "Calculate the tip for {bill_amount} dollars at {percent} percent.",
         "How much should I tip at {percent} percent if the bill is {bill_amount} dollars?",
         "Tip on {bill_amount} dollars, {percent} percent.",
         "Our dinner came to {bill_amount} dollars. Work out a {percent} percent tip.",
         "Figure out {percent} percent of {bill_amount} dollars as a tip."),
    ),
    SuiteTool(
        "find_movie_showtimes", "movies", "Find when a movie is showing in a city.",
        (Param("movie", "string", "Movie title",
               Pool((), ("The Silent Sea", "Night Train", "Blue Harbor", "Paper Moons"))), _city()),
        ('When is "{movie}" showing in {city}?',
         'Find showtimes for "{movie}" in {city}.',
         'What times can I see "{movie}" in {city}?',
         'Movie times for "{movie}" in {city}, please.',
         'Is "{movie}" on in any cinema in {city}?',
         'Check cinemas in {city} for "{movie}".'),
    ),
)
HELD_OUT_TOOLS = ("find_recipes", "book_taxi", "track_package", "calculate_tip", "find_movie_showtimes")
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}
