"""Seed flow (LiteLLM's MLflow page, as written): LiteLLM autologging, a plain call and a tool call."""

import litellm
import mlflow

mlflow.set_experiment("litellm")
mlflow.litellm.autolog()

response = litellm.completion(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Hi 👋 - i'm openai"}],
)
get_weather_tool = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "properties": {"location": {"description": "The city and state, e.g., San Francisco, CA", "type": "string"}},
            "required": ["location"],
            "type": "object",
        },
    },
}
response = litellm.completion(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "What's the weather like in Paris today?"}],
    tools=[get_weather_tool],
)
print(response.choices[0].message.content)
mlflow.flush_trace_async_logging()
