"""Seed flow (POML's MLflow integration page, as written): POML registers its prompt in the
MLflow prompt registry and traces its call; the OpenAI call is autologged."""

import mlflow
import mlflow.openai
import poml
from openai import OpenAI

mlflow.set_experiment("poml_integration")
poml.set_trace("mlflow", trace_dir="pomlruns")
mlflow.openai.autolog()

client = OpenAI()
messages = poml.poml("explain_code.poml", context={"code_path": "sample.py"}, format="openai_chat")
response = client.chat.completions.create(model="gpt-5", **messages)
print(response.choices[0].message.content)
mlflow.flush_trace_async_logging()
