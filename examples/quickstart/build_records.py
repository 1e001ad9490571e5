"""Writes records.jsonl: a small xLAM-format sample covering every reason code of the built-in stages
and each dataset audit, and eval_set.json, the small evaluation set (BFCL question format) that the
contamination audit compares it with.

Run it to regenerate both: ``python examples/quickstart/build_records.py``. Each record says in its
id what it exercises.
"""

import json
from pathlib import Path

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "city": {"description": "City name", "type": "str"},
        "units": {"description": "celsius or fahrenheit", "type": "str, optional", "default": "celsius"},
    },
}
FORECAST = {
    "name": "get_forecast",
    "description": "Forecast for the next days.",
    "parameters": {
        "city": {"description": "City name", "type": "str"},
        "days": {"description": "Number of days", "type": "int"},
    },
}
CONVERT = {
    "name": "convert_currency",
    "description": "Convert an amount between currencies.",
    "parameters": {
        "amount": {"description": "Amount", "type": "float"},
        "from_currency": {"description": "ISO code", "type": "str"},
        "to_currency": {"description": "ISO code", "type": "str"},
    },
}
PRIMES = {
    "name": "is_prime",
    "description": "Checks whether a number is prime.",
    "parameters": {"n": {"description": "The number", "type": "int"}},
}
MEAN = {
    "name": "average",
    "description": "Arithmetic mean of numbers.",
    "parameters": {"numbers": {"description": "The numbers", "type": "List[float]"}},
}
SEARCH = {
    "name": "search_products",
    "description": "Search the shop.",
    "parameters": {
        "query": {"description": "Search words", "type": "str"},
        "in_stock": {"description": "Only items in stock", "type": "bool, optional", "default": False},
        "limit": {"description": "Max results", "type": "int, optional", "default": 10},
    },
}
SORT = {
    "type": "function",
    "function": {
        "name": "sort_list",
        "description": "Sort numbers.",
        "parameters": {
            "type": "object",
            "properties": {
                "values": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "order": {"type": "string", "enum": ["asc", "desc"]},
            },
            "required": ["values", "order"],
        },
    },
}
INTEREST = {
    "name": "compound_interest",
    "description": "Compound interest on an amount.",
    "parameters": {
        "principal": {"description": "Amount", "type": "float"},
        "rate": {"description": "Annual rate, percent", "type": "float"},
        "years": {"description": "Years", "type": "int"},
    },
}
TIMEZONE = {
    "name": "city_time",
    "description": "Local time in a city.",
    "parameters": {"city": {"description": "City", "type": "str"}},
}


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


records = []


def add(rid, query, tools, answers, cot=None):
    record = {
        "id": rid,
        "query": query,
        "tools": json.dumps(tools),
        "answers": answers if isinstance(answers, str) else json.dumps(answers),
    }
    if cot is not None:
        record["cot"] = cot
    records.append(json.dumps(record, ensure_ascii=False))


# --- kept: clean records, with and without CoT, single, parallel and nested calls ---
add(
    "ok-weather",
    "What's the weather in Paris?",
    [WEATHER, FORECAST],
    [call("get_weather", city="Paris")],
    "The user wants the current weather in Paris. get_weather takes a city, so I call it with city Paris.",
)
add(
    "ok-forecast",
    "Give me the 3-day forecast for Oslo.",
    [WEATHER, FORECAST],
    [call("get_forecast", city="Oslo", days=3)],
    "A multi-day forecast is asked for, which is what get_forecast does: city Oslo, days 3.",
)
add(
    "ok-parallel",
    "Weather in Rome and in Madrid, please.",
    [WEATHER],
    [call("get_weather", city="Rome"), call("get_weather", city="Madrid")],
    "Two cities, so get_weather is called twice: once for Rome and once for Madrid.",
)
add(
    "ok-convert",
    "How much is 250 USD in EUR?",
    [CONVERT],
    [call("convert_currency", amount=250.0, from_currency="USD", to_currency="EUR")],
    "convert_currency needs amount 250.0, from_currency USD and to_currency EUR.",
)
add(
    "ok-prime",
    "Is 97 a prime number?",
    [PRIMES, MEAN],
    [call("is_prime", n=97)],
    "The question is about primality of 97; is_prime with n=97 answers it.",
)
add(
    "ok-mean",
    "What is the average of 3, 4.5 and 9?",
    [PRIMES, MEAN],
    [call("average", numbers=[3, 4.5, 9])],
    "The user wants a mean, so average with numbers [3, 4.5, 9].",
)
add(
    "ok-search",
    "Find wireless headphones that are in stock, at most 5 results.",
    [SEARCH],
    [call("search_products", query="wireless headphones", in_stock=True, limit=5)],
    "search_products with query 'wireless headphones', in_stock true and limit 5.",
)
add(
    "ok-sort-openai-tool",
    "Sort 5, 1, 3 from largest to smallest.",
    [SORT],
    [call("sort_list", values=[5, 1, 3], order="desc")],
    "Sorting descending: sort_list with values [5, 1, 3] and order desc.",
)
add(
    "ok-no-cot", "Weather in Lisbon in fahrenheit?", [WEATHER], [call("get_weather", city="Lisbon", units="fahrenheit")]
)
add("ok-no-cot-2", "Is 1000003 prime?", [PRIMES], [call("is_prime", n=1000003)])
add(
    "ok-time",
    "What time is it in Tokyo right now?",
    [TIMEZONE, WEATHER],
    [call("city_time", city="Tokyo")],
    "Local time is asked for; city_time with city Tokyo.",
)
add(
    "ok-unicode",
    "Wetter in München?",
    [WEATHER],
    [call("get_weather", city="München")],
    "Der Nutzer fragt nach dem Wetter in München: get_weather mit city München.",
)
add(
    "ok-quotes",
    'Search for the book "Harry\'s Tale".',
    [SEARCH],
    [call("search_products", query='Harry\'s Tale "special"')],
    "search_products with the exact title as query.",
)
add(
    "ok-answers-parsed",
    "Forecast for Cairo, 7 days.",
    [FORECAST],
    [call("get_forecast", city="Cairo", days=7)],
    "get_forecast with city Cairo and days 7.",
)
records[-1] = json.dumps(
    {**json.loads(records[-1]), "tools": [FORECAST], "answers": [call("get_forecast", city="Cairo", days=7)]}
)
add(
    "ok-no-call",
    "Tell me a joke about the weather.",
    [CONVERT],
    [],
    "No offered tool tells jokes, so no function is called.",
)
add("ok-text-answer", "Hi! Who are you?", [WEATHER], "Hello! I am an assistant that can look up the weather for you.")
add(
    "ok-dotted-name",
    "Square root of 16?",
    [{"name": "math.sqrt", "description": "Square root.", "parameters": {"x": {"type": "float", "description": "x"}}}],
    [call("math.sqrt", x=16.0)],
    "math.sqrt with x 16.0 gives the square root.",
)

# --- classification ---
add(
    "malformed-answer-json",
    "Weather in Berlin?",
    [WEATHER],
    '[{"name": "get_weather", "arguments": {"city": "Ber',
    "get_weather for Berlin.",
)
add("malformed-answer-no-name", "Weather in Berlin?", [WEATHER], [{"arguments": {"city": "Berlin"}}])
add("empty-answer", "Weather in Berlin?", [WEATHER], "   ")

# --- query_tool ---
add(
    "unconvertible-type",
    "Apply f to 3.",
    [
        {
            "name": "apply",
            "description": "Apply a function.",
            "parameters": {
                "f": {"type": "Callable[[int], int]", "description": "fn"},
                "x": {"type": "int", "description": "x"},
            },
        }
    ],
    [call("apply", f="double", x=3)],
)
add(
    "invalid-tool-schema",
    "Sort 3, 2.",
    [{"name": "sort_list", "parameters": {"type": "object", "properties": {"values": {"type": "arary"}}}}],
    [call("sort_list", values=[3, 2])],
)
add("duplicate-tool-name", "Weather in Rome?", [WEATHER, WEATHER], [call("get_weather", city="Rome")])
add(
    "unknown-function",
    "Weather in Rome?",
    [WEATHER],
    [call("get_temperature", city="Rome")],
    "get_temperature with city Rome.",
)

# --- cot ---
add("empty-cot", "Weather in Rome?", [WEATHER], [call("get_weather", city="Rome")], "  ")
add(
    "unclosed-think",
    "Weather in Rome?",
    [WEATHER],
    [call("get_weather", city="Rome")],
    "<think>I should call get_weather for Rome.",
)
add(
    "wrapped-think-repaired",
    "Weather in Vienna?",
    [WEATHER],
    [call("get_weather", city="Vienna")],
    "<think>Vienna's weather: get_weather with city Vienna.</think>",
)
add(
    "cot-misses-function",
    "Forecast for Rome, 2 days.",
    [WEATHER, FORECAST],
    [call("get_forecast", city="Rome", days=2)],
    "The user wants to know about Rome, so I look it up for two days.",
)
add(
    "cot-names-other-function",
    "Forecast for Rome, 2 days.",
    [WEATHER, FORECAST],
    [call("get_forecast", city="Rome", days=2)],
    "I call get_weather and then get_forecast for Rome with days 2.",
)

# --- function_params ---
add("missing-required", "Forecast for Rome.", [FORECAST], [call("get_forecast", city="Rome")], "get_forecast for Rome.")
add(
    "unknown-parameter",
    "Weather in Rome tomorrow?",
    [WEATHER],
    [call("get_weather", city="Rome", date="tomorrow")],
    "get_weather for Rome.",
)
add(
    "wrong-type",
    "Forecast for Rome, a few days.",
    [FORECAST],
    [call("get_forecast", city="Rome", days="a few")],
    "get_forecast for Rome.",
)
add(
    "not-in-enum",
    "Sort 1, 2 randomly.",
    [SORT],
    [call("sort_list", values=[1, 2], order="random")],
    "sort_list with order random.",
)
add(
    "invalid-value-min-items",
    "Sort nothing.",
    [SORT],
    [call("sort_list", values=[], order="asc")],
    "sort_list with no values.",
)
add(
    "nested-wrong-type",
    "Average of 1 and two.",
    [MEAN],
    [call("average", numbers=[1, "two"])],
    "average of the numbers.",
)
add(
    "coerced-int",
    "Forecast for Rome, 5 days.",
    [FORECAST],
    [call("get_forecast", city="Rome", days="5")],
    "get_forecast with city Rome and days 5.",
)
add(
    "coerced-bool-and-list",
    "Headphones in stock.",
    [SEARCH, MEAN],
    [call("search_products", query="headphones", in_stock="true"), call("average", numbers="[1, 2.5]")],
    "search_products for headphones in stock, and average of 1 and 2.5.",
)

# --- format ---
add(
    "unrenderable-param-name",
    "Search 'tea' with max-results 3.",
    [
        {
            "type": "function",
            "function": {
                "name": "search",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}, "max-results": {"type": "integer"}},
                    "required": ["q"],
                },
            },
        }
    ],
    [call("search", **{"q": "tea", "max-results": 3})],
)
add(
    "unrenderable-function-name",
    "Weather in Rome?",
    [{"name": "get weather", "parameters": {"city": {"type": "str", "description": "c"}}}],
    [call("get weather", city="Rome")],
)
add(
    "round-trip-mismatch",
    "Search for the odd text.",
    [SEARCH],
    '[{"name": "search_products", "arguments": {"query": "bad \\ud800 text"}}]',
)

# --- more kept records so the sample has a realistic majority ---
for i, city in enumerate(["Nairobi", "Lima", "Hanoi", "Quito", "Perth", "Dakar", "Riga", "Bern"]):
    add(
        f"ok-city-{i}",
        f"Forecast for {city}, {i + 1} days.",
        [WEATHER, FORECAST],
        [call("get_forecast", city=city, days=i + 1)],
        f"A forecast for {city} over {i + 1} days: get_forecast with city {city} and days {i + 1}.",
    )

# --- dataset audits (pipeline.toml's [audit]): each record passes every stage ---
add(
    "dup-of-ok-weather",
    "WHAT'S the weather in  Paris?",  # ok-weather's query but for case and spacing, with the same call
    [WEATHER, FORECAST],
    [call("get_weather", city="Paris")],
    "Paris weather now: get_weather with city Paris.",
)
add(
    "near-dup-of-ok-search",
    "Find wireless headphones that are in stock, at most 5 results please.",  # one word more than ok-search
    [SEARCH],
    [call("search_products", query="wireless headphones", in_stock=True, limit=5)],
    "search_products with query 'wireless headphones', in_stock true and limit 5.",
)
EVAL_QUESTION = "Calculate the compound interest on 5000 dollars at an annual rate of 4 percent for 3 years."
add(
    "contaminated",
    EVAL_QUESTION,  # copied from eval_set.json
    [INTEREST],
    [call("compound_interest", principal=5000.0, rate=4.0, years=3)],
    "compound_interest with principal 5000, rate 4 and years 3.",
)

# --- conversations (OpenAI chat messages; without [input] format each line is read as its keys say) ---
OPENAI_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
OPENAI_FORECAST = {
    "type": "function",
    "function": {
        "name": "get_forecast",
        "description": "Forecast for a city over a number of days.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 10}},
            "required": ["city", "days"],
        },
    },
}


def tool_call(call_id, name, **arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def conversation(rid, *messages):
    records.append(json.dumps({"id": rid, "tools": [OPENAI_WEATHER, OPENAI_FORECAST], "messages": list(messages)}))


def user(text):
    return {"role": "user", "content": text}


def calls(*made):
    return {"role": "assistant", "content": None, "tool_calls": list(made)}


def result(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def say(text):
    return {"role": "assistant", "content": text}


conversation(  # kept: two assistant turns that call, each answered by its results, then replies
    "conv-oslo",
    user("What's the weather in Oslo, and in Bergen?"),
    calls(tool_call("c1", "get_weather", city="Oslo"), tool_call("c2", "get_weather", city="Bergen")),
    result("c1", '{"sky": "snow", "temp_c": -3}'),
    result("c2", '{"sky": "rain", "temp_c": 4}'),
    say("Oslo: snow, -3 C. Bergen: rain, 4 C."),
    user("And the next 3 days in Bergen?"),
    calls(tool_call("c3", "get_forecast", city="Bergen", days=3)),
    result("c3", '{"days": ["rain", "rain", "cloud"]}'),
    say("Rain on the next two days, then clouds."),
)
conversation(  # truncated (function_params on_fail = "truncate"): its second turn asks for 30 days
    "conv-cut-at-turn-1",
    user("Weather in Lima?"),
    calls(tool_call("c1", "get_weather", city="Lima")),
    result("c1", '{"sky": "cloud", "temp_c": 19}'),
    say("Cloudy, 19 C."),
    user("And for the next month?"),
    calls(tool_call("c2", "get_forecast", city="Lima", days=30)),
    result("c2", '{"error": "days must be at most 10"}'),
    say("I can only forecast 10 days ahead."),
)
conversation(  # discarded by the conversation stage: call c2 is never answered
    "conv-missing-result",
    user("Weather in Quito and Lima?"),
    calls(tool_call("c1", "get_weather", city="Quito"), tool_call("c2", "get_weather", city="Lima")),
    result("c1", '{"sky": "sun", "temp_c": 21}'),
    say("Quito: sunny, 21 C."),
)

EVAL_SET = [
    ("eval_0", EVAL_QUESTION, INTEREST),
    ("eval_1", "What is the capital city of the country with the largest population in Africa?", TIMEZONE),
    ("eval_2", "Convert 120 Japanese yen to Swiss francs using today's exchange rate.", CONVERT),
]
Path(__file__).with_name("eval_set.json").write_text(
    "".join(
        json.dumps({"id": rid, "question": [[{"role": "user", "content": q}]], "function": [tool]}) + "\n"
        for rid, q, tool in EVAL_SET
    ),
    encoding="utf-8",
)

lines = [line.encode("utf-8") for line in records]
# --- quarantined: unreadable input, each on its own line ---
lines.insert(5, b'{"id": "not-json", "query": "Weather?", "tools": "[]", "answers": "[]"')
lines.insert(10, b'{"id": "missing-query", "tools": "[]", "answers": "[]"}')
lines.insert(15, b'{"id": "query-not-string", "query": 42, "tools": "[]", "answers": "[]"}')
lines.insert(20, b'{"id": "latin-1", "query": "Caf\xe9 near me?", "tools": "[]", "answers": "[]"}')
lines.insert(25, json.dumps({"id": "huge-record", "query": "x" * 20000, "tools": "[]", "answers": "[]"}).encode())
lines.insert(30, b'["an array, not a record"]')

Path(__file__).with_name("records.jsonl").write_bytes(b"\n".join(lines) + b"\n")
print(f"wrote {len(lines)} lines")
