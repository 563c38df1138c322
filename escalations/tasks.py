"""Background tasks of the escalations app (django_tasks API, database backend).

Enqueued inside the transaction that opens an escalation (the database backend makes
the task a row of that transaction), executed by the worker after the commit.
"""

from __future__ import annotations

import logging

from django_tasks import task

logger = logging.getLogger(__name__)


@task()
def refine_summary(escalation_id: str) -> str:
    """Ask the model for a short handoff summary of an escalation and store it.

    One call, outside any transaction; its usage is recorded as a ``summary`` ModelCall
    on the turn that escalated (an escalation without a turn records nothing: ModelCall
    belongs to a turn). If the model fails, the extracted summary stays. Either way the
    notifications held for the summary are released. Returns what happened.
    """
    # A task is an entry point: it may use the AI runtime, which sits above this app.
    from escalations import summaries
    from escalations.models import Escalation
    from supportdesk.agent.models import AgentTurn
    from supportdesk.agent.providers import get_provider
    from supportdesk.agent.providers.base import ProviderError
    from supportdesk.agent.runner import record_call

    escalation = Escalation.objects.select_related("thread").filter(pk=escalation_id).first()
    if escalation is None:
        return "gone"
    provider = get_provider("reply")
    if provider is None or provider.name != "openai":
        summaries.escalation_summary_refine(escalation_id=escalation.pk, narrative="")
        return "offline"
    messages = summaries.recent_messages(escalation.thread_id)
    try:
        completion = provider.complete(
            messages=summaries.model_messages(escalation, messages), tools=[]
        )
    except ProviderError as exc:
        logger.warning("summary of escalation %s: the model failed: %s", escalation.pk, exc)
        summaries.escalation_summary_refine(escalation_id=escalation.pk, narrative="")
        return "failed"
    turn = AgentTurn.objects.filter(pk=escalation.turn_id).first() if escalation.turn_id else None
    if turn is not None:
        record_call(turn, provider, completion, "summary", ok=True)
    answer = completion.final.reply if completion.final is not None else completion.text
    narrative = summaries.narrative_from(answer)
    summaries.escalation_summary_refine(escalation_id=escalation.pk, narrative=narrative)
    return "refined" if narrative else "empty"
