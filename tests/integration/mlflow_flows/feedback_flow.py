"""Assessments: feedback from a human and an LLM judge, and an expectation, on a traced call;
and a code check logged while the call's trace was still active."""

import mlflow
from mlflow.entities import AssessmentSource, AssessmentSourceType
from openai import OpenAI

mlflow.set_experiment("feedback")
mlflow.openai.autolog()
client = OpenAI()


@mlflow.trace
def answer(question: str) -> str:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    text = response.choices[0].message.content
    # A check made while the trace is still active: the client keeps it in the trace and sends
    # it with the trace's info when the trace is exported.
    mlflow.log_feedback(trace_id=mlflow.get_active_trace_id(), name="non_empty", value=bool(text),
                        source=AssessmentSource(AssessmentSourceType.CODE, "length-check"))
    return text


answer("Capital of France?")
mlflow.flush_trace_async_logging()
trace_id = mlflow.get_last_active_trace_id()
mlflow.log_feedback(trace_id=trace_id, name="helpfulness", value=True, rationale="answered the question",
                    source=AssessmentSource(AssessmentSourceType.HUMAN, "alice@example.com"))
mlflow.log_feedback(trace_id=trace_id, name="relevance", value=0.75,
                    source=AssessmentSource(AssessmentSourceType.LLM_JUDGE, "gpt-4o-judge"))
mlflow.log_expectation(trace_id=trace_id, name="expected_answer", value="Paris")
print(trace_id)
