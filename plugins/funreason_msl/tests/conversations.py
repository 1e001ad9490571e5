"""Conversations in OpenAI's chat format: 1, 2 and 5 assistant turns with parallel calls, tool results tied by id."""

import json

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    }
    for name, description in (("get_weather", "Current weather for a city."), ("get_time", "Local time in a city."))
]


def calls(cot, *calls):
    """An assistant turn with a CoT and parallel calls (id, name, city)."""
    return {
        "role": "assistant",
        "content": f"<think>{cot}</think>",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps({"city": c})}}
            for i, n, c in calls
        ],
    }


def results(*pairs):
    return [{"role": "tool", "tool_call_id": i, "content": content} for i, content in pairs]


def says(cot, text):
    return {"role": "assistant", "content": f"<think>{cot}</think>{text}"}


CONVERSATIONS = [
    {
        "id": "conv-1",
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "I am planning a trip."},
            {"role": "user", "content": "What is the weather in Lisbon and Porto?"},
            calls(
                "Two cities, so get_weather twice in parallel: Lisbon and Porto.",
                ("a1", "get_weather", "Lisbon"),
                ("a2", "get_weather", "Porto"),
            ),
        ],
    },
    {
        "id": "conv-2",
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "What is the weather in Rome and Madrid?"},
            calls(
                "Two cities: get_weather for Rome and for Madrid.",
                ("b1", "get_weather", "Rome"),
                ("b2", "get_weather", "Madrid"),
            ),
            *results(("b1", "sunny, 24 C"), ("b2", "rain, 15 C")),
            says("Both results are in: Rome sunny, Madrid rainy.", "Rome is sunny (24 C); Madrid has rain (15 C)."),
        ],
    },
    {
        "id": "conv-5",
        "tools": TOOLS,
        "messages": [
            {
                "role": "user",
                "content": "What is the weather in Paris and Berlin, and the local time in Paris and Berlin?",
            },
            calls(
                "Weather first: get_weather for Paris and Berlin.",
                ("c1", "get_weather", "Paris"),
                ("c2", "get_weather", "Berlin"),
            ),
            *results(("c1", "cloudy, 18 C"), ("c2", "Error: weather service unavailable")),
            calls(
                "Now the time: get_time for Paris and Berlin.",
                ("c3", "get_time", "Paris"),
                ("c4", "get_time", "Berlin"),
            ),
            *results(("c3", "14:05"), ("c4", "14:05")),
            says("Berlin's weather failed; report what I have.", "Paris: cloudy, 18 C, 14:05. Berlin: 14:05."),
            {"role": "user", "content": "And in Oslo?"},
            calls(
                "Oslo: get_weather and get_time in parallel.",
                ("c5", "get_weather", "Oslo"),
                ("c6", "get_time", "Oslo"),
            ),
            *results(("c5", "snow, -3 C"), ("c6", "14:05")),
            says("Both Oslo results are in.", "Oslo: snow, -3 C, 14:05."),
        ],
    },
]
