"""Seed flow: `mlflow.set_experiment`, `mlflow.openai.autolog()`, one chat call."""

import mlflow
from openai import OpenAI

mlflow.set_experiment("x")
mlflow.openai.autolog()
client = OpenAI()
response = client.chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": "Weather in Paris?"}])
print(response.choices[0].message.content)
mlflow.flush_trace_async_logging()
